#!/usr/bin/env bash
# Runs the libFuzzer targets build-fuzz/fuzz_<name> (make fuzz-build) on their seed corpora
# tests/fuzz/corpus/<name>/ and prints "N passed, N failed" (one pass per target that exits 0).
#   run.sh quick              each target for 3 s (make test's suite "fuzz"); new inputs go to a
#                             temporary directory, the committed corpus is only read
#   run.sh long RUNS [NAMES]  each target (or NAMES) for RUNS executions (make fuzz: 10^6); new
#                             inputs are kept in build-fuzz/corpus/<name>/
# Crashes are written to build-fuzz/crash-<name>-*; replay one with build-fuzz/fuzz_<name> FILE
# (ROUTELAB_FUZZ_VERBOSE=1 shows the parsers' one-line errors).
set -u
cd "$(dirname "$0")/../.."
mode=${1:-quick}
runs=${2:-1000000}
shift $(($# > 2 ? 2 : $#))
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    # every target the sources define, so a target that was not built fails instead of vanishing
    for f in tests/fuzz/fuzz_*.c; do b=${f##*/fuzz_}; names+=("${b%.c}"); done
fi
export OMP_NUM_THREADS=1
# Stack traces with symbols; leaks are checked (the targets free what a jump leaves behind).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
pass=0
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for name in "${names[@]}"; do
    bin=build-fuzz/fuzz_$name
    seeds=tests/fuzz/corpus/$name
    if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
        echo "FAIL: fuzz $name: missing $bin or $seeds (make fuzz-build)"
        fail=$((fail + 1))
        continue
    fi
    if [ "$mode" = long ]; then
        work=build-fuzz/corpus/$name
        limit=(-runs="$runs")
    else
        work=$tmp/$name
        limit=(-max_total_time=3)
    fi
    mkdir -p "$work"
    start=$SECONDS
    "$bin" "${limit[@]}" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
        -artifact_prefix="build-fuzz/crash-$name-" "$work" "$seeds" >"$tmp/$name.log" 2>&1
    rc=$?
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$tmp/$name.log" | grep -oE '[0-9]+$')
    if [ $rc -eq 0 ]; then
        pass=$((pass + 1))
        echo "fuzz $name: ${execs:-?} executions, no crash ($((SECONDS - start))s)"
    else
        fail=$((fail + 1))
        echo "FAIL: fuzz $name: exit $rc after ${execs:-?} executions ($((SECONDS - start))s):"
        grep -E 'ERROR|runtime error|SUMMARY|Test unit written' "$tmp/$name.log" | head -n 8
    fi
    [ "$mode" = long ] && cp "$tmp/$name.log" "build-fuzz/fuzz-$name.log"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
