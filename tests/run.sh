#!/usr/bin/env bash
# Runs every unit-test binary, the CLI test scripts (tests/cli/test_*.sh, on
# $BUILD/keel) and the fuzz-corpus replay, then prints one closing line
# "N passed, N failed" summed over all of them.
set -u
export BUILD=${BUILD:-build}
cd "$(dirname "$0")/.."
pass=0; fail=0; bad_bins=""
for t in "$BUILD"/tests/test_* tests/cli/test_*.sh; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  out=$("$t" 2>&1); rc=$?
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
  p=$(echo "$line" | awk '{print $1}'); f=$(echo "$line" | awk '{print $3}')
  [ -n "$p" ] || { p=0; f=1; }
  if [ $rc -ne 0 ] && [ "${f:-0}" = 0 ]; then f=1; fi
  pass=$((pass + p)); fail=$((fail + f))
  if [ "$f" != 0 ]; then
    bad_bins="$bad_bins $name"
    printf '%s\n' "$out" | tail -40 | sed "s/^/  [$name] /"
  fi
  printf '%-28s %s\n' "$name" "${line:-no result line (rc=$rc)}"
done
for f in "$BUILD"/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f"); corpus="tests/fuzz/corpus/${name#fuzz_}"
  if out=$("$f" "$corpus" 2>&1); then
    n=$(printf '%s\n' "$out" | tail -1)
    pass=$((pass + 1)); printf '%-28s %s\n' "$name" "$n" # n: "replayed N files"
  else
    fail=$((fail + 1)); bad_bins="$bad_bins $name"
    printf '%s\n' "$out" | tail -40 | sed "s/^/  [$name] /"
  fi
done
[ -n "$bad_bins" ] && echo "failing:$bad_bins"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
