#!/usr/bin/env bash
# Runs every test program ($RL_BUILD/test_*, default build/) and the command-line tests
# (tests/test_cli.sh on $RL_BIN, default ./routelab), the crash test, the data-parallel tests
# (tests/test_mpi.sh on $RL_MPI_BIN, where OpenMPI is installed), the Hugging Face tokenizer
# reference (tests/hf_tokenizer_ref.sh), then the fuzz targets for a
# few seconds each on their seed corpora (suite "fuzz", normal builds only), and prints the sum
# of their "N passed, N failed, N skipped" lines, every skip named above it (a skip is never
# counted as a pass). Exit status 1 on any failure.
# RL_SANITIZE=1 (make test SANITIZE=1): the ASan/UBSan build in build-san/. Leak checking is
# off there: OpenMP's and OpenBLAS's thread pools keep blocks alive at exit that LeakSanitizer
# reports as leaks (false positives); the fuzz targets check leaks of the parsers themselves.
set -u
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
RL_BUILD=${RL_BUILD:-build}
export RL_BIN=${RL_BIN:-./routelab}
if [ "${RL_SANITIZE:-}" = 1 ]; then
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0:halt_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
total_pass=0
total_fail=0
total_skip=0
skips=()
logdir=$RL_BUILD/test-logs
mkdir -p "$logdir"
run_suite() {
    local name=$1
    shift
    local start=$SECONDS
    "$@" >"$logdir/$name.log" 2>&1
    local rc=$?
    local line
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$logdir/$name.log" | tail -n 1)
    local p f s
    p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
    f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
    s=$(echo "$line" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+')
    [ -z "$line" ] && p=0 && f=0
    [ -z "$s" ] && s=0
    if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi  # a crash counts as a failure
    grep -E '^FAIL' "$logdir/$name.log"
    while IFS= read -r l; do skips+=("$name: ${l#SKIP: }"); done < <(grep -E '^SKIP' "$logdir/$name.log")
    printf '%-15s %5s passed, %s failed, %s skipped  (%ds)%s\n' "$name" "$p" "$f" "$s" \
        $((SECONDS - start)) "$([ $rc -ne 0 ] && echo "  exit $rc: see $logdir/$name.log")"
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    total_skip=$((total_skip + s))
}
for t in "$RL_BUILD"/test_*; do
    [ -x "$t" ] || continue
    run_suite "$(basename "$t" | sed 's/^test_//')" "$t"
done
run_suite cli bash tests/test_cli.sh
run_suite hf bash tests/test_hf.sh
run_suite hf_twin bash tests/test_hf_twin.sh
run_suite llm bash tests/test_llm.sh
run_suite crash bash tests/test_crash.sh
run_suite mpi bash tests/test_mpi.sh
run_suite hf_ref bash tests/hf_tokenizer_ref.sh
if [ "${RL_SANITIZE:-}" != 1 ]; then
    run_suite fuzz bash tests/fuzz/run.sh quick
fi
for l in "${skips[@]}"; do echo "SKIP $l"; done
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
