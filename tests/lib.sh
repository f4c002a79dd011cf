# lib.sh: what the shell test scripts share (sourced): run from the project root with ./routelab,
# a temporary directory removed at exit, and the counters behind the final
# "NAME: N passed, N failed, N skipped" line that tests/run.sh sums up.
set -u
cd "$(dirname "${BASH_SOURCE[1]}")/.."
RL=${RL_BIN:-./routelab}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
skipped=0
ok() { pass=$((pass + 1)); }
exec 3>&1  # FAIL and SKIP lines bypass the redirections of checked commands
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&3; }
# skip WHAT: checks that cannot run here, named and counted as skipped (never as passed)
skip() { skipped=$((skipped + 1)); echo "SKIP: $*" >&3; }
check() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
summary() { echo "$1: $pass passed, $fail failed, $skipped skipped"; [ $fail -eq 0 ]; }
# expect_error WHAT PATTERN CMD...: CMD must fail with one error line matching PATTERN (no crash,
# no sanitizer report)
expect_error() {
    local what=$1 pat=$2
    shift 2
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc -eq 0 ]; then bad "$what: exit 0, expected an error"; return; fi
    if [ $rc -gt 128 ]; then bad "$what: crashed (signal $((rc - 128)))"; return; fi
    # make test SANITIZE=1: a sanitizer report on an error path is a crash, not an error line
    if grep -qE 'Sanitizer|runtime error:' "$TMP/err"; then bad "$what: sanitizer report: $(head -3 "$TMP/err")"; return; fi
    if ! grep -qE "$pat" "$TMP/err"; then bad "$what: stderr lacks /$pat/: $(cat "$TMP/err")"; return; fi
    if [ "$(grep -c 'error' "$TMP/err")" -ne 1 ]; then bad "$what: not a one-line error"; return; fi
    ok
}
