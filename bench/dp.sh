#!/usr/bin/env bash
# Data-parallel throughput on this machine (README, "Data-parallel training with MPI"): the
# paper's model (6 layers, d 256, 4 heads, d_ff 1024, T 512, vocab 50257) on MQAR data with a
# global batch of 8 rows, as 1 rank x 2 threads and as 2 ranks x 1 thread (mpirun). Prints the
# median step time of each (steps 2..STEPS), their ratio, and the 2-rank run's gradient
# reduction time per step. Usage: bash bench/dp.sh [MPI_BINARY] (default build-mpi/routelab).
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build-mpi/routelab}
STEPS=${STEPS:-6}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_WAIT_POLICY=PASSIVE
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
P="--data=mqar --vocab_size=50257 --mqar_pairs=4 --mqar_eval_examples=8 --eval_batches=1 \
 --steps=$STEPS --log_every=1 --eval_every=0 --ckpt_every=0 --dropout=0 --k=64"
median_step() {  # RUN_DIR: median seconds a step over steps 2..
    python3 -c "
import json, statistics, sys
L = [json.loads(l) for l in open(sys.argv[1] + '/metrics.jsonl') if '\"loss\"' in l]
print(statistics.median(8 * 512 / l['tokens_per_s'] for l in L[1:]))" "$1"
}
"$BIN" train $P --batch=8 --threads=2 --out="$TMP/r1" >"$TMP/r1.log" 2>&1
mpirun -np 2 --oversubscribe --bind-to none "$BIN" train $P --batch=4 --threads=1 --out="$TMP/r2" >"$TMP/r2.log" 2>&1
t1=$(median_step "$TMP/r1")
t2=$(median_step "$TMP/r2")
comm=$(grep -o 'gradient reduction [0-9.]* s a step' "$TMP/r2.log" | grep -oE '[0-9]+\.[0-9]+')
params=$(grep -o 'params: [0-9]* unique' "$TMP/r1.log" | grep -oE '[0-9]+')
python3 -c "
import json, sys
t1, t2, comm, p = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print(json.dumps({'step_s_1rank_2threads': t1, 'step_s_2ranks_1thread': t2,
                  'ratio_2ranks_over_1rank': t2 / t1, 'reduction_s_per_step_2ranks': comm,
                  'params': p, 'gradient_mbytes': 4 * p / 1e6, 'steps': $STEPS}))" "$t1" "$t2" "$comm" "$params"
