#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test_eval_cli.sh — `keel eval`: a suite of every capability kind on
# stories260K prints one table row per capability and exits 0; --json FILE
# writes the same results as JSON atomically (no temp file left), --json -
# prints JSON on stdout, --limit caps n, two runs give the same numbers. Bad
# input (unknown key, missing data file, missing model, missing adapter) exits
# 1 with one stderr line naming the file/line/key, nothing on stdout and no
# JSON written (an existing JSON file is left as it was). Bad usage exits 2.
# Run by tests/run.sh; ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
. tests/cli/lib.sh
MODEL=$SHARED/models/stories260K/stories260K.gguf
cli_tmp eval-cli
cli_need_keel
cli_need_file "$MODEL"

json_ok() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if isinstance(r, list) and len(r) == int(sys.argv[2]) else 1)' "$1" "$2"; }
json_field() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r[int(sys.argv[2])][sys.argv[3]])' "$1" "$2" "$3"; }
# the numbers without the timing, for comparing two runs
json_numbers() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); [x.pop("seconds") for x in r]; print(json.dumps(r, sort_keys=True))' "$1"; }

cat >"$tmp/mc.jsonl" <<'J'
{"question": "Once upon a time there was a little", "choices": ["girl", "zzq xx"], "answer": 0}
{"question": "The dog said", "choices": ["woof", "the the the"], "answer": 0}
{"question": "Lily was happy because", "choices": ["she had a new toy", "zzzz"], "answer": 0}
J
cat >"$tmp/text.txt" <<'T'
Once upon a time, there was a little girl named Lily. She liked to play outside with her ball.

One day, Lily saw a big dog in the park. The dog was friendly and wanted to play too.

They played together all day, and Lily was very happy when she went home.
T
cat >"$tmp/em.jsonl" <<'J'
{"prompt": "Once upon a time", "answer": "there was a little girl"}
{"prompt": "The cat", "answers": ["sat", "ran"]}
J
cat >"$tmp/probe.jsonl" <<'J'
{"prompt": "Once upon a time"}
{"prompt": "Lily and Ben"}
J
cat >"$tmp/suite.yaml" <<Y
capabilities:
  - {name: mc, type: multiple_choice, data: "$tmp/mc.jsonl", metric: acc_norm}
  - {name: prose, type: perplexity, data: "$tmp/text.txt", window: 32}
  - {name: em, type: exact_match, data: "$tmp/em.jsonl", max_new_tokens: 6, normalize: [case, whitespace, punctuation]}
  - {name: probe, type: probe, data: "$tmp/probe.jsonl", max_new_tokens: 6, pattern: "[a-z]"}
Y

run eval -m "$MODEL" "$tmp/suite.yaml" -t 1
check "suite exits 0" [ "$rc" -eq 0 ]
check "table header" has "capability"
for n in mc prose em probe; do check "row $n" grep -qE "^$n +" "$tmp/out"; done
check "mc metric acc_norm, also acc" grep -qE '^mc +acc_norm .* acc ' "$tmp/out"
check "ppl row has tokens" grep -qE '^prose +ppl .* tokens' "$tmp/out"
check "progress on stderr" grep -qF "capabilities scored" "$tmp/err"

run eval -m "$MODEL" "$tmp/suite.yaml" -t 1 -q --json "$tmp/r1.json"
check "json exits 0" [ "$rc" -eq 0 ]
check "json is a list of 4" json_ok "$tmp/r1.json" 4
check "json names" [ "$(json_field "$tmp/r1.json" 1 name)" = prose ]
check "json ppl metric" [ "$(json_field "$tmp/r1.json" 1 metric)" = ppl ]
check "json mc metric2" [ "$(json_field "$tmp/r1.json" 0 metric2)" = acc ]
check "json mc n" [ "$(json_field "$tmp/r1.json" 0 n)" = 3 ]
check "probe pass rate 1" python3 -c "import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))[3][\"value\"] == 1 else 1)" "$tmp/r1.json"
check "no temp file left" [ -z "$(ls "$tmp" | grep 'r1.json.tmp')" ]
check "quiet: nothing on stderr" [ ! -s "$tmp/err" ]

run eval -m "$MODEL" "$tmp/suite.yaml" -t 2 -q --json - --limit 2
check "json - exits 0" [ "$rc" -eq 0 ]
cp "$tmp/out" "$tmp/r2.json"
check "json - on stdout" json_ok "$tmp/r2.json" 4
check "limit 2" [ "$(json_field "$tmp/r2.json" 0 n)" = 2 ]

run eval -m "$MODEL" "$tmp/suite.yaml" -t 2 -q --json "$tmp/r3.json"
check "same numbers on a second run (2 threads)" [ "$(json_numbers "$tmp/r1.json")" = "$(json_numbers "$tmp/r3.json")" ]

# bad input: one line, nothing written
echo old >"$tmp/keep.json"
cat >"$tmp/bad.yaml" <<Y
capabilities:
  - name: mc
    type: multiple_choice
    data: "$tmp/mc.jsonl"
    metrc: acc
Y
run eval -m "$MODEL" "$tmp/bad.yaml" --json "$tmp/keep.json"
check "unknown key exits 1" [ "$rc" -eq 1 ]
check "unknown key message" err_is "$tmp/bad.yaml:5:5: key 'capabilities[0].metrc': unknown key (did you mean 'metric'?)"
check "json untouched" [ "$(cat "$tmp/keep.json")" = old ]
printf 'capabilities:\n  - {name: x, type: perplexity, data: "%s/none.txt"}\n' "$tmp" >"$tmp/nodata.yaml"
run eval -m "$MODEL" "$tmp/nodata.yaml" --json "$tmp/keep.json"
check "missing data exits 1" [ "$rc" -eq 1 ]
check "missing data message" err_is "none.txt"
check "json untouched after a failed run" [ "$(cat "$tmp/keep.json")" = old ]
printf 'capabilities:\n  - {name: x, type: multiple_choice, data: "%s/text.txt"}\n' "$tmp" >"$tmp/badfmt.yaml"
run eval -m "$MODEL" "$tmp/badfmt.yaml"
check "bad data exits 1" [ "$rc" -eq 1 ]
check "bad data names the file" err_is "text.txt:1"
run eval -m "$tmp/none.gguf" "$tmp/suite.yaml"
check "missing model exits 1" [ "$rc" -eq 1 ]
check "missing model message" err_is "none.gguf"
run eval -m "$MODEL" --adapter "$tmp/noadapter" "$tmp/suite.yaml"
check "missing adapter exits 1" [ "$rc" -eq 1 ]
check "missing adapter message" err_is "noadapter"
run eval -m "$MODEL" "$tmp/nosuite.yaml"
check "missing suite exits 1" [ "$rc" -eq 1 ]
check "missing suite message" err_is "nosuite.yaml"
run eval "$tmp/suite.yaml"
check "no model exits 2" [ "$rc" -eq 2 ]
run eval -m "$MODEL" "$tmp/suite.yaml" --limit 0
check "bad limit exits 2" [ "$rc" -eq 2 ]
run eval --help
check "help exits 0" [ "$rc" -eq 0 ]
check "help text" has "usage: keel eval"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
