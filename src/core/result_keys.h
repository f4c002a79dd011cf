// result_keys.h: the names of the keys of every command's JSON result, defined once. The
// commands write them (through json_out.h) and repro reads them, so a renamed key is a compile
// error, not a silent NaN in a report.
#ifndef ROUTELAB_RESULT_KEYS_H
#define ROUTELAB_RESULT_KEYS_H

// train --json, result.json of a training run, metrics.jsonl
#define RK_COMPLETED "completed"          // bool: the run reached its last step
#define RK_STEP "step"
#define RK_LOSS "loss"
#define RK_STEPS "steps"
#define RK_RUN_DIR "run_dir"
#define RK_TRAIN_LOSS "train_loss"
#define RK_LR "lr"
#define RK_GRAD_NORM "grad_norm"
#define RK_TOKENS_PER_S "tokens_per_s"
#define RK_ELAPSED_S "elapsed_s"
#define RK_PEAK_RSS_MIB "peak_rss_mib"
// eval (and the evaluation inside train and distill)
#define RK_VAL_LOSS "val_loss"
#define RK_VAL_PPL "val_ppl"
#define RK_VAL_ACCURACY "val_accuracy"
#define RK_VAL_TOKENS "val_tokens"
#define RK_EXACT_MATCH "exact_match"
#define RK_EXACT_MATCH_CARRY "exact_match_carry"
#define RK_EXACT_MATCH_NO_CARRY "exact_match_no_carry"
#define RK_CARRY_EXAMPLES "carry_examples"
#define RK_NO_CARRY_EXAMPLES "no_carry_examples"
#define RK_DIGIT_ACCURACY "digit_accuracy"
#define RK_THREADS "threads"                // eval, bench: omp_get_max_threads() when measured
// per-layer diagnostics (arrays over layers)
#define RK_TOPK_MASS "topk_mass"
#define RK_ENTROPY_RATIO "entropy_ratio"
#define RK_GATE_PRECISION "gate_precision"
#define RK_GATE_RECALL "gate_recall"
#define RK_GATE_F1 "gate_f1"
#define RK_KEPT_FRACTION "kept_fraction"
#define RK_EMPTY_ROWS "empty_rows"
#define RK_GATE_GRAD_NORM "gate_grad_norm"
#define RK_AUX_LOSS "aux_loss"
#define RK_ROUTER_ENTROPY "router_entropy"
#define RK_EXPERT_UTIL "expert_util"
#define RK_DROPPED "dropped"
// distill: the model deployed with hard top-k gates
#define RK_LOSS_KIND "loss_kind"
#define RK_FINAL_LOSS "final_loss"
#define RK_DENSE_VAL_PPL "dense_val_ppl"
#define RK_HARD_VAL_PPL "hard_val_ppl"
#define RK_HARD_VAL_ACCURACY "hard_val_accuracy"
// probe (arrays over depth)
#define RK_QUERIES "queries"
#define RK_KEY_PRECISION "key_precision"
#define RK_VALUE_PRECISION "value_precision"
#define RK_PROJECTED_KEY_PRECISION "projected_key_precision"
#define RK_BLOOM_PRECISION "bloom_precision"
// gateinfo (arrays over layers; bits per (head, query, key) sample)
#define RK_LABEL_RATE "label_rate"
#define RK_LABEL_ENTROPY_BITS "label_entropy_bits"
#define RK_DECISION_RATE "decision_rate"
#define RK_MI_BITS "mi_bits"
#define RK_MI_PLUGIN_BITS "mi_plugin_bits"
#define RK_MI_SHARE "mi_share_of_label_entropy"
#define RK_SELFTEST_INDEPENDENT_BITS "selftest_independent_bits"
#define RK_SELFTEST_IDENTICAL_BITS "selftest_identical_bits"
#define RK_PROBE_MI_BITS "probe_mi_bits"
#define RK_PROBE_VAL_BCE "probe_val_bce"
// prepare: dataset.json (read back by dataset.c and sample.c)
#define RK_TOKENIZER "tokenizer"
#define RK_VOCAB_SIZE "vocab_size"

#endif
