#!/usr/bin/env bash
# make bench: wrk against meridian (1 worker) fronting the test origin on
# loopback. Prints requests/s, p50/p99 latency and meridian's own CPU time
# per request (utime+stime from /proc over the run) per scenario.
# Settings: DURATION (s, default 5), CONNS (default 50), SCENARIOS (names
# to run, space-separated; default all), PORT (first of the loopback ports
# used, default 18480), MERIDIAN_BIN (the binary to measure, default
# build/release/meridian: compare two builds in the same run).
# Then tools/bench-tls.sh: TLS handshakes and requests, meridian beside
# HAProxy (about 1.6 minutes more; TLS=0 skips it, see its settings).
# The side-by-side run against HAProxy and nginx (CPU per request as a
# ratio to HAProxy's) is a separate harness, not part of this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-5}
conns=${CONNS:-50}
bin=build/release
meridian_bin=${MERIDIAN_BIN:-$bin/meridian}
run=$(mktemp -d /tmp/meridian-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$run"
}
trap cleanup EXIT

command -v wrk >/dev/null || { echo "bench: wrk is missing (make deps)" >&2; exit 1; }
port=${PORT:-18480}; origin_a=$((port + 1)); origin_b=$((port + 2)); admin=$((port + 9))

echo "k1:$(head -c 32 /dev/urandom | base64 -w0)" > "$run/session.keys"
head -c 24 /dev/urandom | base64 -w0 > "$run/admin.token"
cat > "$run/meridian.json" <<JSON
{
  "workers": 1,
  "listeners": [{"name": "http", "address": "127.0.0.1:$port"}],
  "session": {"keys_file": "session.keys"},
  "regions": [{"name": "bench", "clusters": [
    {"name": "bench-a", "weight": 1, "endpoints": ["127.0.0.1:$origin_a", "127.0.0.1:$origin_b"]}]}],
  "routing": {"default": ["bench"]},
  "admin": {"address": "127.0.0.1:$admin", "token_file": "admin.token"},
  "access_log": ""
}
JSON

"$bin/origin" --cluster bench-a "127.0.0.1:$origin_a" "127.0.0.1:$origin_b" > "$run/origin.out" &
pids+=($!)
"$meridian_bin" -t -c "$run/meridian.json" > /dev/null
"$meridian_bin" -c "$run/meridian.json" 2> "$run/meridian.err" &
meridian_pid=$!
pids+=("$meridian_pid")
for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.05
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

printf '%-10s %10s %9s %9s %14s\n' scenario 'req/s' 'p50' 'p99' 'CPU µs/req'
scenario() {
    local name=$1 path=$2; shift 2
    local before after out reqs rps p50 p99
    case " ${SCENARIOS:-$name} " in *" $name "*) ;; *) return 0 ;; esac
    before=$(cpu_ticks "$meridian_pid")
    out=$(wrk -t1 -c"$conns" -d"${duration}s" --latency "$@" "http://127.0.0.1:$port$path")
    after=$(cpu_ticks "$meridian_pid")
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    printf '%-10s %10s %9s %9s %14.1f\n' "$name" "$rps" "$p50" "$p99" \
        "$(echo "($after - $before) * 1000000 / $hz / $reqs" | bc -l)"
}
scenario keepalive /
scenario close / -H 'Connection: close'
scenario body16k '/bytes?n=16384'
scenario body1m '/bytes?n=1048576'
# The same 1 MiB chunked by the origin (16 KiB chunks): decoded and re-encoded.
scenario chunked1m '/bytes?n=1048576&chunked=1'
# A 64 KiB upload in 16 KiB chunks, decoded and re-encoded by meridian.
cat > "$run/chunked.lua" <<'LUA'
local chunk = string.rep("x", 16384)
local body = ""
for _ = 1, 4 do body = body .. string.format("%x\r\n", #chunk) .. chunk .. "\r\n" end
body = body .. "0\r\n\r\n"
-- wrk.format would add a Content-Length: the request is written by hand.
local req = "POST /sink HTTP/1.1\r\nHost: bench\r\nTransfer-Encoding: chunked\r\n\r\n" .. body
request = function() return req end
LUA
scenario upload64k /sink -s "$run/chunked.lua"

# TLS termination, meridian beside HAProxy (tools/bench-tls.sh; TLS=0 skips it).
if [ "${TLS:-1}" != 0 ]; then
    cleanup
    trap - EXIT
    MERIDIAN=${MERIDIAN:-$meridian_bin} bash tools/bench-tls.sh
fi
