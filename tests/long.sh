#!/usr/bin/env bash
# Heavier acceptance checks (`make check-long`, ~40 minutes on 2 cores: 1-3 ~10, 4 ~30):
#  1. the `make run` recipe: a 2-layer model on MQAR (T 64, 4 pairs) passes 90% test accuracy;
#  2. a 2-layer d=128 model on prepared WikiText validation text: falling loss, eval perplexity;
#  3. deploy-time swap and post-hoc distillation on the MQAR model;
#  4. a single-node Slurm (tests/slurm_local.sh) runs the tiny `repro all` plan to completion
#     (--plan=slurm, 1 core a job), and its report equals that of the same sweep run by
#     --plan=make with make -j2; a job signalled as at its time limit requeues itself and the
#     resumed training's losses equal an uninterrupted run's (~30 minutes on 2 cores).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/slurm_local.sh"
start=$SECONDS
$RL train --data=mqar --out="$TMP/mqar" --n_layer=2 --d_model=128 --n_head=2 --d_ff=256 \
    --seq_len=64 --vocab_size=64 --mqar_pairs=4 --batch=64 --steps=1000 --dropout=0 --lr=1e-3 \
    --warmup=100 --eval_every=250 --eval_batches=0 --log_every=250 --json >"$TMP/mqar.json"
echo "MQAR: $(cat "$TMP/mqar.json") ($((SECONDS - start)) s)"
check "MQAR test accuracy > 0.9" python3 -c "import json; assert json.load(open('$TMP/mqar.json'))['val_accuracy'] > 0.9"
check "MQAR under 10 minutes" [ $((SECONDS - start)) -lt 600 ]
$RL distill --from="$TMP/mqar" --loss=bce --k=8 --steps=100 --log_every=0 --json >"$TMP/d.json"
echo "distill: $(cat "$TMP/d.json")"
check "BCE-distilled hard top-8 keeps MQAR accuracy > 0.9" python3 -c "
import json; d=json.load(open('$TMP/d.json')); assert d['hard_val_accuracy'] > 0.9 and min(d['gate_f1']) > 0.5"
WIKI=../shared/data/wikitext-103-raw/wiki.valid.raw
if [ -f "$WIKI" ]; then
    $RL tokenizer-train --input="$WIKI" --vocab_size=8192 --out="$TMP/wiki.bpe" >/dev/null
    $RL prepare --input="$WIKI" --tokenizer="$TMP/wiki.bpe" --out="$TMP/wiki" >/dev/null
    $RL train --data="$TMP/wiki" --vocab_size=8192 --n_layer=2 --d_model=128 --n_head=4 --d_ff=512 \
        --seq_len=128 --batch=16 --steps=600 --lr=2e-3 --warmup=50 --dropout=0 --eval_every=200 \
        --eval_batches=0 --log_every=100 --out="$TMP/wr" --json >"$TMP/wr.json"
    echo "WikiText: $(cat "$TMP/wr.json")"
    check "WikiText loss falls" python3 -c "
import json; L=[json.loads(l)['loss'] for l in open('$TMP/wr/metrics.jsonl') if '\"loss\"' in l]
assert sum(L[-20:])/20 < sum(L[:20])/20 - 2, (L[:3], L[-3:])"
    check "WikiText eval perplexity" python3 -c "import json; assert json.load(open('$TMP/wr.json'))['val_ppl'] < 1000"
else
    skip "$WIKI not found: WikiText training checks"
fi
# --- 4. sweeps on Slurm and make ------------------------------------------------------------
if [ "$(id -u)" != 0 ]; then
    skip "not root: the single-node Slurm (slurmctld, slurmd, munged run as root)"
elif ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    skip "slurm-wlm or munge not installed (apt-get install slurm-wlm munge): Slurm plan checks"
elif ! slurm_local_start "$TMP/slurm" >"$TMP/slurm.err" 2>&1; then
    skip "single-node Slurm does not start here: $(tail -1 "$TMP/slurm.err")"
else
    trap 'slurm_local_stop; rm -rf "$TMP"' EXIT
    ok  # the cluster is up
    # wait_jobs SECONDS: until the queue is empty
    wait_jobs() { local i; for i in $(seq 1 "$1"); do [ -z "$(squeue -h 2>/dev/null)" ] && return 0; sleep 1; done; return 1; }
    t=$SECONDS
    $RL repro all --scale=tiny --seeds=1 --sbatch_cpus=1 --plan=slurm --out="$TMP/ps" >/dev/null
    for f in "$TMP"/ps/slurm/*.sbatch; do
        sbatch --test-only "$f" 2>&1 | grep -q "to start at" || bad "sbatch --test-only $f: $(sbatch --test-only "$f" 2>&1 | tail -1)"
    done
    bash "$TMP/ps/submit.sh" >"$TMP/submit.log" 2>&1 || bad "submit.sh: $(tail -2 "$TMP/submit.log")"
    n=$($RL repro all --scale=tiny --seeds=1 --list | python3 -c "import json,sys; print(len(json.load(sys.stdin)))")
    check "submit.sh submitted every run ($n)" [ "$(grep -c ': job [0-9]' "$TMP/submit.log")" -eq "$n" ]
    check "Slurm ran the tiny repro all plan to completion" wait_jobs 3000
    check "every run finished ($n result.json)" [ "$(find "$TMP/ps" -name result.json | wc -l)" -eq "$n" ]
    OMP_NUM_THREADS=1 $RL repro all --scale=tiny --seeds=1 --out="$TMP/ps" >"$TMP/ps.log" 2>&1 || bad "repro all report after slurm"
    check "the report run reused every Slurm run" [ "$(grep -c 'skipped' "$TMP/ps.log")" -eq "$($RL repro all --scale=tiny --seeds=1 --list | python3 -c "import json,sys; print(sum(len(r['recipes']) for r in json.load(sys.stdin)))")" ]
    echo "slurm plan of repro all tiny: $((SECONDS - t)) s"
    t=$SECONDS
    $RL repro all --scale=tiny --seeds=1 --plan=make --out="$TMP/pm" >/dev/null
    OMP_NUM_THREADS=1 make -s -C "$TMP/pm" -j2 >"$TMP/pm.log" 2>&1 || bad "make -j2 plan: $(tail -2 "$TMP/pm.log")"
    OMP_NUM_THREADS=1 $RL repro all --scale=tiny --seeds=1 --out="$TMP/pm" >/dev/null 2>&1 || bad "repro all report after make"
    echo "make -j2 plan of repro all tiny: $((SECONDS - t)) s"
    check "report.md of the Slurm sweep equals the make -j2 sweep's" cmp "$TMP/ps/report.md" "$TMP/pm/report.md"
    # A job signalled as at its time limit (scancel -s TERM -b: what --signal=B:TERM@120 sends)
    # checkpoints, requeues itself and resumes: the losses equal an uninterrupted run's.
    RQ="--scale=tiny --seeds=1 --steps=300"
    $RL repro concentration $RQ --sbatch_cpus=1 --plan=slurm --out="$TMP/rq" >/dev/null
    bash "$TMP/rq/submit.sh" >/dev/null
    jid=$(squeue -h -o %i | head -1)
    for _ in $(seq 1 300); do
        [ -f "$TMP/rq/dense/seed0/metrics.jsonl" ] && [ "$(grep -c '"loss"' "$TMP/rq/dense/seed0/metrics.jsonl")" -ge 20 ] && break
        sleep 0.2
    done
    scancel -s TERM -b "$jid"
    check "the signalled job requeued itself and finished" wait_jobs 600
    check "the job was restarted once" bash -c "scontrol show job $jid | grep -q 'Restarts=1'"
    check "the requeued job says why" grep -q "requeueing job $jid" "$TMP/rq/slurm/dense.seed0.out"
    OMP_NUM_THREADS=1 $RL repro concentration $RQ --out="$TMP/rq1" >/dev/null 2>&1 || bad "uninterrupted repro concentration"
    grep -o '"loss": *[^,]*' "$TMP/rq/dense/seed0/metrics.jsonl" >"$TMP/a"
    grep -o '"loss": *[^,]*' "$TMP/rq1/dense/seed0/metrics.jsonl" >"$TMP/b"
    check "requeued training's 300 losses are bit-identical to an uninterrupted run's" cmp -s "$TMP/a" "$TMP/b"
    check "300 losses" [ "$(wc -l <"$TMP/a")" -eq 300 ]
fi
summary long
