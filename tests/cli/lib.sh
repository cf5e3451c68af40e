# SPDX-License-Identifier: MIT
# lib.sh — sourced by the tests/cli/test_*.sh scripts once they are at the
# repository root: the paths (BUILD, KEEL, SHARED), the pass/fail tally, a
# temporary directory removed on exit, the skip/fail preconditions and the
# helpers each script used to define for itself. Not a test (tests/run.sh runs
# test_*.sh only). Each script still ends by printing "N passed, N failed".
BUILD=${BUILD:-build}
KEEL=${KEEL:-$BUILD/keel}
SHARED=${KEEL_SHARED:-../shared}
pass=0; fail=0

# cli_tmp NAME: $tmp = a fresh directory keel-NAME.XXXXXX, removed on exit.
cli_tmp() {
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/keel-$1.XXXXXX") || exit 1
  trap 'rm -rf "$tmp"' EXIT
}
# The keel binary must be built: else one failure.
cli_need_keel() {
  if [ ! -x "$KEEL" ]; then echo "FAIL: $KEEL is not built (make BUILD=$BUILD)"; echo "0 passed, 1 failed"; exit 1; fi
}
# cli_need_file PATH: a file the whole script needs (a shared model): else skipped.
cli_need_file() {
  if [ ! -f "$1" ]; then echo "skipped: $1 not found"; echo "0 passed, 0 failed"; exit 0; fi
}

# run ARGS...: keel with no stdin; stdout in $tmp/out, stderr in $tmp/err, status in $rc.
run() { "$KEEL" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"; rc=$?; }
# check NAME CONDITION...: counts a pass or a failure (showing the first
# CLI_OUT_LINES lines of stdout, default 10, and CLI_ERR_LINES of stderr, default 5).
check() {
  local name=$1; shift
  if "$@"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL $name (rc=$rc)"
    sed 's/^/    stdout: /' "$tmp/out" | head -"${CLI_OUT_LINES:-10}"
    sed 's/^/    stderr: /' "$tmp/err" | head -"${CLI_ERR_LINES:-5}"
  fi
}
# ok / bad NAME WHY: the same tally for scripts that decide with if/else.
ok() { pass=$((pass + 1)); }
bad() {
  fail=$((fail + 1))
  echo "FAIL $1: $2"
  sed 's/^/    stderr: /' "$tmp/err" | head -8
  sed 's/^/    stdout: /' "$tmp/out" | head -4
}
has() { grep -qF -- "$1" "$tmp/out"; }
outhas() { has "$1"; }
errhas() { grep -qF -- "$1" "$tmp/err"; }
# exactly one stderr line containing $1, nothing on stdout
err_is() { [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -qF -- "$1" "$tmp/err" && [ ! -s "$tmp/out" ]; }
sanitizer_clean() { ! grep -qE 'Sanitizer|runtime error:' "$tmp/err"; }
