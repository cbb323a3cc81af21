#!/usr/bin/env bash
# tests/run.sh BUILD_DIR: runs every unit test binary BUILD_DIR/tests/test_*,
# then every tests/integration/test_*.py against BUILD_DIR's binaries.
#
# Each binary or script is one unit, passed or failed by its exit code; a
# failing unit's output is shown. Ends with the line "N passed, N failed" and
# exits non-zero if any unit failed.
#   TESTS=REGEX        run only units whose name matches (bash =~), e.g. TESTS=origin
#   UNIT_TIMEOUT=SECS  kill a unit that runs longer (default 600)
#   FUZZ_DIR=DIR       also run each libFuzzer harness DIR/fuzz_* over its
#                      committed corpus for FUZZ_TEST_SECONDS (default 10)
set -u

if [ $# -ne 1 ]; then
    echo "usage: $0 BUILD_DIR" >&2
    exit 2
fi
cd "$(dirname "$0")/.." || exit 2
BUILD_DIR=$(realpath -m "$1")

export MERIDIAN_BIN="$BUILD_DIR/meridian"
export ORIGIN_BIN="$BUILD_DIR/origin"
export MERIDIANCTL_BIN="$BUILD_DIR/meridianctl"
export PYTHONDONTWRITEBYTECODE=1
case "$(basename "$BUILD_DIR")" in
*asan*)
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    ;;
esac

units=()
for f in "$BUILD_DIR"/tests/test_*; do
    # Binaries only: objects and dependency files have a dot in their name.
    if [ -f "$f" ] && [ -x "$f" ] && [[ $(basename "$f") != *.* ]]; then
        units+=("$f")
    fi
done
for f in tests/integration/test_*.py; do
    [ -f "$f" ] && units+=("$f")
done
if [ -n "${FUZZ_DIR:-}" ]; then
    for f in "$FUZZ_DIR"/fuzz_*; do
        if [ -f "$f" ] && [ -x "$f" ] && [[ $(basename "$f") != *.* ]]; then
            units+=("$f")
        fi
    done
fi

passed=0
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for unit in "${units[@]}"; do
    name=$(basename "$unit")
    if [ -n "${TESTS:-}" ] && ! [[ $name =~ $TESTS ]]; then
        continue
    fi
    case "$unit" in
    *.py) cmd=(python3 "$unit") ;;
    */fuzz_*) cmd=(bash tests/fuzz/run.sh "$unit" "${FUZZ_TEST_SECONDS:-10}") ;;
    *) cmd=("$unit") ;;
    esac
    if timeout -k 10 "${UNIT_TIMEOUT:-600}" "${cmd[@]}" >"$out" 2>&1 </dev/null; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        rc=$?
        echo "FAIL $name (exit $rc)"
        sed 's/^/    /' "$out"
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
