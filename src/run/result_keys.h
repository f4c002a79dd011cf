// result_keys.h: the names of the keys of every command's JSON result, defined once. The
// commands write them (through json_out.h) and repro reads them, so a renamed key is a compile
// error, not a silent NaN in a report.
#ifndef ROUTELAB_RESULT_KEYS_H
#define ROUTELAB_RESULT_KEYS_H

// train --json, result.json of a training run, metrics.jsonl
#define RK_COMPLETED "completed"          // bool: the run reached its last step
#define RK_STEP "step"
#define RK_LOSS "loss"
// eval (and the evaluation inside train and distill)
#define RK_VAL_LOSS "val_loss"
#define RK_VAL_PPL "val_ppl"
#define RK_VAL_ACCURACY "val_accuracy"
#define RK_EXACT_MATCH "exact_match"
// per-layer diagnostics (arrays over layers)
#define RK_TOPK_MASS "topk_mass"
#define RK_ENTROPY_RATIO "entropy_ratio"
#define RK_GATE_F1 "gate_f1"
#define RK_GATE_GRAD_NORM "gate_grad_norm"
#define RK_ROUTER_ENTROPY "router_entropy"
#define RK_EXPERT_UTIL "expert_util"
#define RK_DROPPED "dropped"
// distill: the model deployed with hard top-k gates
#define RK_HARD_VAL_PPL "hard_val_ppl"
#define RK_HARD_VAL_ACCURACY "hard_val_accuracy"
// probe (arrays over depth)
#define RK_KEY_PRECISION "key_precision"
#define RK_VALUE_PRECISION "value_precision"
#define RK_PROJECTED_KEY_PRECISION "projected_key_precision"
#define RK_BLOOM_PRECISION "bloom_precision"

#endif
