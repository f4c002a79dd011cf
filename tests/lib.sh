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
