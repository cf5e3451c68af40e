#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_cli.sh — the keel command line on bad input: every bad model file
# (missing, truncated, bad magic, GGUF v1, an unsupported Q4_K tensor, a
# safetensors header that runs past the file, a config.json field of the wrong
# type) through each command, and invalid-UTF-8 / missing text files for
# `keel perplexity` and `keel tokenize`, must exit non-zero without a crash
# (exit code < 128, no sanitizer report), print nothing on stdout and exactly
# one stderr line naming the file and the problem. `--help` exits 0 with the
# usage on stdout; an unknown option or command exits 2. Run by tests/run.sh
# (BUILD says which build's keel); ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/cli/lib.sh
cli_tmp cli
cli_need_keel
# (run, ok, bad: lib.sh)

# expect_fail NAME FILE PROBLEM_REGEX ARGS...: the one-line error contract
expect_fail() {
  local name=$1 file=$2 problem=$3
  shift 3
  run "$@"
  local why=""
  if grep -qE 'Sanitizer|runtime error:' "$tmp/err"; then why="sanitizer report"
  elif [ "$rc" -ge 128 ]; then why="killed by a signal (exit $rc)"
  elif [ "$rc" -eq 0 ]; then why="exit 0 on bad input"
  elif [ -s "$tmp/out" ]; then why="wrote to stdout"
  elif [ "$(wc -l <"$tmp/err")" -ne 1 ]; then why="$(wc -l <"$tmp/err") stderr lines, want 1"
  elif ! grep -qF -- "$file" "$tmp/err"; then why="message does not name $file"
  elif ! grep -qiE -- "$problem" "$tmp/err"; then why="message does not say /$problem/"
  fi
  if [ -z "$why" ]; then ok; else bad "$name (exit $rc)" "$why"; fi
}

# ---- bad model files, through every command that loads a model ------------------------
C=tests/fuzz/corpus/gguf
printf 'A short valid text.\n' >"$tmp/ok.txt"
head -c 100000 tests/data/tiny-llama.gguf >"$tmp/truncated.gguf"
# safetensors whose 8-byte header length (255) runs past the 13-byte file
mkdir "$tmp/bad-header"
cp tests/data/tiny-llama-hf/config.json tests/data/tiny-llama-hf/tokenizer.json "$tmp/bad-header/"
printf '\377\000\000\000\000\000\000\000{"a":' >"$tmp/bad-header/model.safetensors"
# config.json with "hidden_size": "64" (a string)
mkdir "$tmp/bad-config"
cp tests/data/tiny-llama-hf/* "$tmp/bad-config/"
sed 's/"hidden_size": *64/"hidden_size": "64"/' tests/data/tiny-llama-hf/config.json >"$tmp/bad-config/config.json"
grep -q '"hidden_size": "64"' "$tmp/bad-config/config.json" || echo "warning: config.json edit did not apply"

# name | path to pass | file the message must name | problem regex
cases=(
  "missing file|$tmp/missing.gguf|$tmp/missing.gguf|no such file"
  "truncated GGUF|$tmp/truncated.gguf|$tmp/truncated.gguf|past the end|truncated"
  "truncated GGUF header|$C/bad_truncated_header.gguf|$C/bad_truncated_header.gguf|truncated"
  "bad magic|$C/bad_magic.gguf|$C/bad_magic.gguf|magic"
  "GGUF v1|$C/bad_version1.gguf|$C/bad_version1.gguf|version 1"
  "Q4_K tensor|$C/bad_type_q4_k.gguf|$C/bad_type_q4_k.gguf|Q4_K"
  "safetensors bad header|$tmp/bad-header|$tmp/bad-header/model.safetensors|header"
  "config.json wrong type|$tmp/bad-config|$tmp/bad-config/config.json|hidden_size"
)
for c in "${cases[@]}"; do
  IFS='|' read -r name path file problem <<<"$c"
  # the regex may itself hold '|': everything after the third field
  problem=${c#*|*|*|}
  expect_fail "info: $name" "$file" "$problem" info "$path"
  expect_fail "tokenize: $name" "$file" "$problem" tokenize -m "$path" "hello"
  expect_fail "generate: $name" "$file" "$problem" generate -m "$path" -p "hello" -n 2
  expect_fail "perplexity: $name" "$file" "$problem" perplexity -m "$path" -f "$tmp/ok.txt"
done

# ---- bad text files -------------------------------------------------------------------------
printf 'hello \303\050 world\n' >"$tmp/bad-utf8.txt" # C3 starts a 2-byte sequence, 28 is not a continuation
M=tests/data/tiny-llama.gguf
expect_fail "perplexity: invalid UTF-8 text" "$tmp/bad-utf8.txt" "UTF-8" perplexity -m "$M" -f "$tmp/bad-utf8.txt" --ctx 8
expect_fail "tokenize: invalid UTF-8 text" "$tmp/bad-utf8.txt" "UTF-8" tokenize -m "$M" -f "$tmp/bad-utf8.txt"
expect_fail "tokenize (tokenizer.json): invalid UTF-8 text" "$tmp/bad-utf8.txt" "UTF-8" \
  tokenize -m tests/data/tiny-llama-hf/tokenizer.json -f "$tmp/bad-utf8.txt"
expect_fail "perplexity: missing text file" "$tmp/missing.txt" "no such file" perplexity -m "$M" -f "$tmp/missing.txt"
expect_fail "tokenize: missing text file" "$tmp/missing.txt" "no such file" tokenize -m "$M" -f "$tmp/missing.txt"

# ---- help and usage errors --------------------------------------------------------------------
for cmd in "" info generate perplexity tokenize; do
  # shellcheck disable=SC2086 # $cmd is one word or none
  run $cmd --help
  if [ "$rc" -eq 0 ] && grep -q usage "$tmp/out" && [ ! -s "$tmp/err" ]; then ok
  else bad "keel $cmd --help (exit $rc)" "want exit 0, usage on stdout, empty stderr"; fi
done
for args in "info --bogus" "generate --bogus" "perplexity --bogus" "tokenize --bogus" "--bogus" "bogus-command" \
            "generate -m $M -p hi -n notanumber"; do
  # shellcheck disable=SC2086
  run $args
  if [ "$rc" -eq 2 ] && [ ! -s "$tmp/out" ] && [ -s "$tmp/err" ] && ! grep -qE 'Sanitizer|runtime error:' "$tmp/err"; then ok
  else bad "keel $args (exit $rc)" "want exit 2, a message on stderr, empty stdout"; fi
done
run
if [ "$rc" -eq 2 ] && [ ! -s "$tmp/out" ]; then ok; else bad "keel with no command (exit $rc)" "want exit 2, usage on stderr"; fi

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
