#!/usr/bin/env bash
# Data-parallel training over MPI ranks (src/core/dist.h) with the MPI build $RL_MPI_BIN
# (make test builds build-mpi/routelab where mpicc is installed): mpirun -np 2 with --batch=4
# logs the loss of one process with --batch=8; two 2-rank runs are bit-identical; a 2-rank run
# stopped and resumed continues bit-identically, and refuses another rank count; ranks with
# different configs are refused; a build without MPI refuses to run under mpirun.
source "$(dirname "$0")/lib.sh"
MPI_BIN=${RL_MPI_BIN:-build-mpi/routelab}
# mpirun as root needs these; 2 ranks may exceed the free cores
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPIRUN="mpirun -np 2 --oversubscribe"
T="--data=mqar --n_layer=2 --d_model=32 --n_head=2 --d_ff=64 --seq_len=32 --vocab_size=32 \
 --mqar_pairs=4 --mqar_eval_examples=16 --eval_batches=2 --log_every=0 --warmup=2 --d_g=8 --k=8 \
 --dropout=0 --steps=20 --threads=1"
losses() { grep -o '"loss": *[^,]*' "$1/metrics.jsonl"; }
# same_ckpt A B: the same tensors (bytes) and metadata, but the wall-clock time elapsed_s and
# the run directory (the config's out)
same_ckpt() {
    python3 - "$1" "$2" <<'PY'
import json, struct, sys
def load(p):
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    meta = head.pop("__metadata__")
    for k in ("elapsed_s", "checksum.__metadata__"): meta.pop(k)
    cfg = json.loads(meta.pop("config")); cfg.pop("out"); meta["config"] = cfg
    return head, meta, raw[8 + n:]
a, b = load(sys.argv[1]), load(sys.argv[2])
sys.exit(0 if a == b else 1)
PY
}

# The refusal needs no MPI: a launcher's environment is enough.
OMPI_COMM_WORLD_SIZE=2 $RL train $T --steps=1 --out="$TMP/nompi" >"$TMP/nompi.out" 2>"$TMP/nompi.err"
rc=$?
check "a build without MPI refuses to be one of mpirun's processes (exit $rc)" \
    bash -c "[ $rc -ne 0 ] && [ \$(wc -l <'$TMP/nompi.err') -eq 1 ] && grep -q 'built without MPI.*make MPI=1' '$TMP/nompi.err'"
check "... and writes no run directory" [ ! -e "$TMP/nompi" ]

if ! command -v mpirun >/dev/null; then
    skip "mpirun not installed (apt-get install openmpi-bin libopenmpi-dev): data-parallel tests"
elif [ ! -x "$MPI_BIN" ]; then
    skip "no MPI build at $MPI_BIN (make build-mpi/routelab needs mpicc): data-parallel tests"
else
    $MPIRUN "$MPI_BIN" train $T --batch=4 --out="$TMP/dp2" --json >"$TMP/dp2.json" 2>"$TMP/dp2.err" ||
        bad "mpirun -np 2 train: $(tail -3 "$TMP/dp2.err")"
    "$MPI_BIN" train $T --batch=8 --out="$TMP/dp1" --json >"$TMP/dp1.json" 2>/dev/null || bad "train --batch=8"
    check "2 ranks x batch 4 log the loss of 1 process x batch 8 (1e-6 at step 1, 1e-4 at every step)" python3 -c "
import json, sys
L = lambda p: [json.loads(l)['loss'] for l in open(p + '/metrics.jsonl') if '\"loss\"' in l]
a, b = L(sys.argv[1]), L(sys.argv[2])
assert len(a) == len(b) == 20, (len(a), len(b))
rel = [abs(x - y) / abs(y) for x, y in zip(a, b)]
assert rel[0] <= 1e-6 and max(rel) <= 1e-4, rel
print('max relative difference', max(rel))" "$TMP/dp2" "$TMP/dp1"
    check "the 2-rank run's result is one JSON object (rank 0 alone prints)" python3 -c "
import json; d = json.load(open('$TMP/dp2.json')); assert d['completed'] and d['steps'] == 20"
    check "the 2-rank run's log names the global batch" grep -q "2 ranks x batch 4 x grad_accum 1 = global batch 8" "$TMP/dp2.err"
    $MPIRUN "$MPI_BIN" train $T --batch=4 --out="$TMP/dp2b" >/dev/null 2>&1 || bad "second mpirun -np 2 train"
    check "two 2-rank runs: bit-identical losses" cmp -s <(losses "$TMP/dp2") <(losses "$TMP/dp2b")
    check "two 2-rank runs: bit-identical checkpoints (tensors, metadata)" same_ckpt "$TMP/dp2/model.ckpt" "$TMP/dp2b/model.ckpt"
    # dropout, grad_accum 2: stop after 7 steps, resume, compare with the uninterrupted 2-rank run
    $MPIRUN "$MPI_BIN" train $T --batch=4 --grad_accum=2 --dropout=0.1 --out="$TMP/full" >/dev/null 2>&1 || bad "2-rank full run"
    $MPIRUN "$MPI_BIN" train $T --batch=4 --grad_accum=2 --dropout=0.1 --stop_after=7 --out="$TMP/part" >/dev/null 2>&1 ||
        bad "2-rank stop_after run"
    check "the stopped 2-rank run logged 7 steps" [ "$(losses "$TMP/part" | wc -l)" -eq 7 ]
    expect_one_error() {  # WHAT PATTERN CMD...: exit non-zero, PATTERN on stderr
        local what=$1 pat=$2; shift 2
        "$@" >/dev/null 2>"$TMP/err" && { bad "$what: exit 0"; return; }
        grep -qE "$pat" "$TMP/err" && ok || bad "$what: stderr lacks /$pat/: $(head -3 "$TMP/err")"
    }
    expect_one_error "resume of a 2-rank run on 1 process is refused" "the run used 2 process.*mpirun -np 2" \
        "$MPI_BIN" train --resume="$TMP/part"
    $MPIRUN "$MPI_BIN" train --resume="$TMP/part" >/dev/null 2>&1 || bad "2-rank resume"
    check "2-rank run stopped and resumed: bit-identical losses" cmp -s <(losses "$TMP/full") <(losses "$TMP/part")
    check "2-rank run stopped and resumed: bit-identical checkpoint (tensors, metadata)" same_ckpt "$TMP/full/model.ckpt" "$TMP/part/model.ckpt"
    # SIGTERM to one rank: the ranks agree on the step, rank 0 checkpoints, resume completes
    $MPIRUN "$MPI_BIN" train $T --batch=4 --steps=100000 --ckpt_every=0 --eval_every=0 --out="$TMP/sig" >/dev/null 2>&1 &
    mp=$!
    for _ in $(seq 1 200); do
        [ -f "$TMP/sig/metrics.jsonl" ] && [ "$(losses "$TMP/sig" | wc -l)" -ge 3 ] && break
        sleep 0.1
    done
    kill -TERM "$(pgrep -P "$mp" -f "routelab train" | tail -1)"  # the last rank only
    wait "$mp"
    rc=$?
    check "SIGTERM to one rank: the job exits 0 (got $rc)" [ $rc -eq 0 ]
    check "SIGTERM to one rank: rank 0 wrote the checkpoint" [ -f "$TMP/sig/model.ckpt" ]
    expect_one_error "ranks with different configs are refused" "rank 1's config differs from rank 0's" \
        mpirun --oversubscribe -np 1 "$MPI_BIN" train $T --batch=4 --out="$TMP/mm" : \
        -np 1 "$MPI_BIN" train $T --batch=4 --lr=2e-3 --out="$TMP/mm"
    expect_one_error "eval under mpirun is refused" "eval runs on one process" \
        $MPIRUN "$MPI_BIN" eval --ckpt="$TMP/dp2"
    check "the MPI build without mpirun: 1 process, the plain build's losses" bash -c "
        '$MPI_BIN' train $T --batch=8 --out='$TMP/m1' >/dev/null 2>&1 && $RL train $T --batch=8 --out='$TMP/p1' >/dev/null 2>&1 &&
        cmp -s <(grep -o '\"loss\": *[^,]*' '$TMP/m1/metrics.jsonl') <(grep -o '\"loss\": *[^,]*' '$TMP/p1/metrics.jsonl')"
fi
summary mpi
