#!/usr/bin/env bash
# tests/fuzz/run.sh HARNESS SECONDS [WORK_DIR]: runs one libFuzzer harness
# (build/fuzz/fuzz_NAME) for SECONDS over its committed corpus
# tests/fuzz/corpus/NAME, with tests/fuzz/NAME.dict and NAME.options when
# there are.
#
# New inputs go to WORK_DIR (default: a temporary folder, removed after), never
# into the committed corpus: merge them by hand (docs/fuzzing.md). A crash,
# leak or timeout fails the run; its input is kept as
# build/fuzz/artifacts/NAME-crash-* and libFuzzer's last lines are printed.
set -u
if [ $# -lt 2 ]; then
    echo "usage: $0 HARNESS SECONDS [WORK_DIR]" >&2
    exit 2
fi
bin=$(realpath "$1")
seconds=$2
cd "$(dirname "$0")/../.." || exit 2
name=$(basename "$bin")
name=${name#fuzz_}
corpus=tests/fuzz/corpus/$name
if [ $# -ge 3 ]; then
    work=$3
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p build/fuzz/artifacts
args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
      -artifact_prefix="build/fuzz/artifacts/$name-")
[ -f "tests/fuzz/$name.dict" ] && args+=(-dict="tests/fuzz/$name.dict")
# NAME.options: more libFuzzer flags, one a line (e.g. -max_len=20000).
[ -f "tests/fuzz/$name.options" ] && mapfile -t -O "${#args[@]}" args <"tests/fuzz/$name.options"
dirs=("$work")
[ -d "$corpus" ] && dirs+=("$corpus")
"$bin" "${args[@]}" "${dirs[@]}"
