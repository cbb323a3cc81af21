#!/usr/bin/env bash
# tools/bench-tls.sh (run by `make bench` after tools/bench.sh): TLS
# termination, meridian (1 worker) beside HAProxy (nbthread 1, as the
# side-by-side bench's haproxy-1t) in the same run, both fronting the test
# origin on loopback with the same certificate, cipher settings and load.
#
# Scenarios, each NAME-VERSION-KEY (VERSION 1.3 or 1.2, KEY ec = P-256 or rsa = RSA-2048):
#   full-*       new connection per request: full handshake, GET, close (tools/tlsbench -m full)
#   resume-*     the same with session resumption (TLS 1.3 tickets, TLS 1.2 session reuse;
#                each client slot offers the newest session it was given) (tlsbench -m resume)
#   keepalive-*  requests over kept-alive TLS connections (wrk, https)
#   keepalive-plain   the same over plain HTTP, for the cost TLS adds per request
# Per system: connections (or requests) per second, p50/p99 latency, the
# proxy's own CPU per connection (request) = utime+stime from /proc/PID/stat
# over the measured window (tlsbench samples it itself, after its warm-up),
# connections per second per core of proxy CPU, how busy the proxy and the
# client were, and ratios to HAProxy in the same run.
#
# Settings (environment):
#   DURATION        measured seconds per run (5); every run also has TLS_WARMUP (1 s)
#   CONNS           concurrent connections (50)
#   TLS_SCENARIOS   default: full-1.3-ec resume-1.3-ec keepalive-1.3-ec keepalive-plain
#                            full-1.3-rsa full-1.2-ec resume-1.2-ec full-1.2-rsa
#                   (also: resume-*-rsa, keepalive-1.2-*, keepalive-*-rsa)
#   TLS_SYSTEMS     "haproxy-1t meridian-1w" (default)
#   TLS_WARMUP      warm-up seconds of each tlsbench run (1)
#   TLS12_CIPHER    the one TLS 1.2 cipher clients offer (ECDHE-ECDSA-AES128-GCM-SHA256
#                   with the EC certificate, ECDHE-RSA-AES128-GCM-SHA256 with RSA)
#   TLS13_SUITE     the one TLS 1.3 suite clients offer (TLS_AES_128_GCM_SHA256)
#   TLS_GROUPS      key exchange groups clients offer ("X25519:P-256", X25519 key share)
#   PIN             1 (default): proxies on CPU 1, origin + load generator on CPU 0
#   MERIDIAN        the binary (build/release/meridian)
#   TLS_KEEP=1      keep the run folder (certificates, configs, logs, raw results)
# Default total: 8 scenarios x 2 systems x (5 + 1) s (wrk runs have no warm-up), about 1.6 minutes.
# meridian is skipped, with the reason, while `meridian -t` refuses the "tls"
# listener configuration or its listener does not complete a handshake and a GET.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-5}
conns=${CONNS:-50}
warmup=${TLS_WARMUP:-1}
scenarios=${TLS_SCENARIOS:-"full-1.3-ec resume-1.3-ec keepalive-1.3-ec keepalive-plain full-1.3-rsa full-1.2-ec resume-1.2-ec full-1.2-rsa"}
systems=${TLS_SYSTEMS:-"haproxy-1t meridian-1w"}
suite13=${TLS13_SUITE:-TLS_AES_128_GCM_SHA256}
groups=${TLS_GROUPS:-X25519:P-256}
pin=${PIN:-1}
bin=build/release
meridian=${MERIDIAN:-$bin/meridian}
tlsbench=$bin/tlsbench
sni=bench.example.test
hz=$(getconf CLK_TCK)

# What the servers accept (identical for both); each client offers exactly one
# cipher and one suite from these, so both proxies run the same algorithms.
srv_ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
srv_suites="TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

# Ports: 18490-18499 (tools/bench.sh uses 18480-18489, the side-by-side bench 18080, 18090, 18101-18301).
ha_ec=18490 ha_rsa=18491 mr_ec=18492 mr_rsa=18493 ha_plain=18494 mr_plain=18495
origin_a=18496 origin_b=18497 admin=18498

say() { echo "bench-tls: $*" >&2; }
die() { say "$*"; exit 1; }

for sc in $scenarios; do
  case $sc in
    full-1.[23]-ec|full-1.[23]-rsa|resume-1.[23]-ec|resume-1.[23]-rsa|keepalive-1.[23]-ec|keepalive-1.[23]-rsa|keepalive-plain) ;;
    *) die "unknown scenario '$sc' (see the top of tools/bench-tls.sh)" ;;
  esac
done
for s in $systems; do
  case $s in haproxy-1t|meridian-1w) ;; *) die "unknown system '$s' (haproxy-1t, meridian-1w)" ;; esac
done
[[ $duration =~ ^[0-9]+$ ]] && [ "$duration" -ge 1 ] || die "DURATION must be whole seconds >= 1"
for t in openssl wrk taskset ss; do command -v "$t" >/dev/null || die "$t is missing (make deps)"; done
[ -x "$tlsbench" ] || die "$tlsbench is missing (make build)"
[ -x "$bin/origin" ] || die "$bin/origin is missing (make build)"

run=$(mktemp -d /tmp/meridian-bench-tls.XXXXXX)
pids=()
cleanup() {
  local p i
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "${TLS_KEEP:-0}" = 1 ]; then say "run folder kept: $run"; else rm -rf "$run"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for p in $ha_ec $ha_rsa $mr_ec $mr_rsa $ha_plain $mr_plain $origin_a $origin_b $admin; do
  [ -z "$(ss -Htln "sport = :$p" 2>/dev/null)" ] || die "port $p is in use (another bench running?)"
done

if [ "$pin" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  proxy_pin=(taskset -c 1); load_pin=(taskset -c 0)
else
  [ "$pin" = 1 ] && say "fewer than 2 CPUs: not pinning"
  proxy_pin=(); load_pin=()
fi

# ---- certificates: one EC P-256 and one RSA-2048, self-signed, used by both proxies
mkcert() { # NAME OPENSSL-NEWKEY-ARGS...
  local name=$1; shift
  openssl req -x509 -nodes -days 7 -subj "/CN=$sni" \
    -addext "subjectAltName=DNS:$sni,IP:127.0.0.1" "$@" \
    -keyout "$run/$name.key" -out "$run/$name.crt" 2>/dev/null || die "openssl could not make the $name certificate"
  cat "$run/$name.crt" "$run/$name.key" > "$run/$name.pem"   # HAProxy's crt: certificate + key
}
mkcert ec -newkey ec -pkeyopt ec_paramgen_curve:P-256
mkcert rsa -newkey rsa:2048

# Client-side OpenSSL configuration for wrk (it sets no cipher or version of its
# own): the same one version, cipher, suite and groups tlsbench offers.
client_cnf() { # VERSION KEY -> path
  local v=$1 key=$2 f=$run/client-$1-$2.cnf c12
  c12=$(cipher12 "$key")
  cat > "$f" <<EOF
openssl_conf = conf_main
[conf_main]
ssl_conf = ssl_main
[ssl_main]
system_default = sys_default
[sys_default]
MinProtocol = TLSv$v
MaxProtocol = TLSv$v
CipherString = $c12
Ciphersuites = $suite13
Groups = $groups
EOF
  echo "$f"
}
cipher12() { # KEY
  if [ -n "${TLS12_CIPHER:-}" ]; then echo "$TLS12_CIPHER"
  elif [ "$1" = rsa ]; then echo ECDHE-RSA-AES128-GCM-SHA256
  else echo ECDHE-ECDSA-AES128-GCM-SHA256; fi
}

# ---- origin: the project's test origin, two endpoints of one cluster
"${load_pin[@]}" "$bin/origin" --cluster bench-a "127.0.0.1:$origin_a" "127.0.0.1:$origin_b" > "$run/origin.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$origin_b/healthz" && break
  sleep 0.05
done

# probe PORT KEY -> 0 when a verified TLS handshake (certificate for $sni) and a GET answered 200.
probe() {
  timeout 10 "$tlsbench" -m full -c 1 -n 1 -E 1 -w 0 -d 3 -k "$run/$2.crt" -s "$sni" "127.0.0.1:$1" \
    > "$run/probe.out" 2>&1
}
wait_probe() { # PORT KEY SECONDS (a TLS handshake that fails once connected fails at once)
  local i
  for i in $(seq $(( $3 * 10 ))); do
    probe "$1" "$2" && return 0
    grep -q 'err_handshake=[1-9]' "$run/probe.out" && return 1
    sleep 0.1
  done
  return 1
}

# cookie_of PORT -> "MRD=..." of a first answer (then sent on every request,
# as the side-by-side bench's `sticky`: a returning session, no new routing decision).
cookie_of() {
  curl -sk -m 5 -D - -o /dev/null --resolve "$sni:$1:127.0.0.1" "https://$sni:$1/" | tr -d '\r' |
    awk 'tolower($0) ~ /^set-cookie: *mrd=/ { sub(/^[^:]*: */, ""); split($0, a, ";"); print a[1]; exit }'
}

declare -A pid_of port_ec port_rsa port_plain cookie_for
active=()

start_haproxy() {
  if ! command -v haproxy >/dev/null; then
    say "haproxy-1t: skipped, haproxy is not installed (apt-get install haproxy)"; return 1
  fi
  cat > "$run/haproxy.cfg" <<EOF
# The side-by-side bench's HAProxy peer with TLS on its listeners.
global
    nbthread 1
    maxconn 8000
    ssl-default-bind-ciphers $srv_ciphers
    ssl-default-bind-ciphersuites $srv_suites
    ssl-default-bind-options ssl-min-ver TLSv1.2
    # Without curves HAProxy 2.6 offers P-256 only (a HelloRetryRequest for an X25519 key share).
    ssl-default-bind-curves X25519:P-256

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 60s
    option http-keep-alive
    http-reuse safe
    option forwardfor

frontend edge
    bind 127.0.0.1:$ha_ec ssl crt $run/ec.pem alpn http/1.1
    bind 127.0.0.1:$ha_rsa ssl crt $run/rsa.pem alpn http/1.1
    bind 127.0.0.1:$ha_plain
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
    default_backend bench-a

backend bench-a
    balance roundrobin
    cookie MRD insert indirect nocache httponly secure maxlife 24h attr "SameSite=Lax"
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 2s rise 2 fall 3
    server a1 127.0.0.1:$origin_a cookie a1
    server a2 127.0.0.1:$origin_b cookie a2
EOF
  haproxy -c -q -f "$run/haproxy.cfg" > "$run/haproxy-check.out" 2>&1 || {
    say "haproxy-1t: skipped, haproxy refused its configuration:"; sed 's/^/  /' "$run/haproxy-check.out" >&2; return 1; }
  "${proxy_pin[@]}" haproxy -db -f "$run/haproxy.cfg" < /dev/null > "$run/haproxy.log" 2>&1 &
  pid_of[haproxy-1t]=$!
  pids+=($!)
  port_ec[haproxy-1t]=$ha_ec port_rsa[haproxy-1t]=$ha_rsa port_plain[haproxy-1t]=$ha_plain
  wait_probe "$ha_ec" ec 10 && wait_probe "$ha_rsa" rsa 2 || {
    say "haproxy-1t: skipped, no verified TLS answer:"; sed 's/^/  /' "$run/probe.out" "$run/haproxy.log" >&2; return 1; }
}

start_meridian() {
  [ -x "$meridian" ] || { say "meridian-1w: skipped, $meridian is missing (make)"; return 1; }
  echo "k1:$(head -c 32 /dev/urandom | base64 -w0)" > "$run/session.keys"
  head -c 24 /dev/urandom | base64 -w0 > "$run/admin.token"
  local tls_ec tls_rsa tls_common
  tls_common="\"min_version\": \"TLSv1.2\", \"ciphers\": \"$srv_ciphers\", \"ciphersuites\": \"$srv_suites\", \"alpn\": [\"http/1.1\"]"
  tls_ec="{\"certificates\": [{\"cert\": \"ec.crt\", \"key\": \"ec.key\"}], $tls_common}"
  tls_rsa="{\"certificates\": [{\"cert\": \"rsa.crt\", \"key\": \"rsa.key\"}], $tls_common}"
  cat > "$run/meridian.json" <<JSON
{
  "workers": 1,
  "listeners": [
    {"name": "https-ec", "address": "127.0.0.1:$mr_ec", "tls": $tls_ec},
    {"name": "https-rsa", "address": "127.0.0.1:$mr_rsa", "tls": $tls_rsa},
    {"name": "http", "address": "127.0.0.1:$mr_plain"}
  ],
  "session": {"keys_file": "session.keys"},
  "regions": [{"name": "bench", "clusters": [
    {"name": "bench-a", "weight": 1, "endpoints": ["127.0.0.1:$origin_a", "127.0.0.1:$origin_b"]}]}],
  "routing": {"default": ["bench"]},
  "admin": {"address": "127.0.0.1:$admin", "token_file": "admin.token"},
  "timeouts": {"shutdown_grace_ms": 1000},
  "access_log": ""
}
JSON
  if ! "$meridian" -t -c "$run/meridian.json" > "$run/meridian-check.out" 2>&1; then
    say "meridian-1w: skipped, \`meridian -t\` refuses the TLS listener configuration (TLS termination not there yet?):"
    head -5 "$run/meridian-check.out" | sed 's/^/  /' >&2
    return 1
  fi
  if grep -q 'tls: unknown key' "$run/meridian-check.out"; then
    say "meridian-1w: skipped, this meridian does not know the \"tls\" listener key yet:"
    grep -m2 'tls: unknown key' "$run/meridian-check.out" | sed 's/^/  /' >&2
    return 1
  fi
  "${proxy_pin[@]}" "$meridian" -c "$run/meridian.json" < /dev/null > "$run/meridian.log" 2>&1 &
  pid_of[meridian-1w]=$!
  pids+=($!)
  port_ec[meridian-1w]=$mr_ec port_rsa[meridian-1w]=$mr_rsa port_plain[meridian-1w]=$mr_plain
  if ! wait_probe "$mr_ec" ec 10 || ! wait_probe "$mr_rsa" rsa 2; then
    say "meridian-1w: skipped, \`meridian -t\` accepts the configuration but its \"tls\" listener did not answer a verified handshake + GET with 200 (TLS termination not there yet?):"
    { grep -i -m3 'tls' "$run/meridian-check.out" || true; tail -3 "$run/probe.out"; tail -5 "$run/meridian.log"; } | sed 's/^/  /' >&2
    kill -TERM "${pid_of[meridian-1w]}" 2>/dev/null || true
    return 1
  fi
}

for s in $systems; do
  case $s in
    haproxy-1t) start_haproxy || continue ;;
    meridian-1w) start_meridian || continue ;;
  esac
  cookie_for[$s]=$(cookie_of "${port_ec[$s]}")
  [ -n "${cookie_for[$s]}" ] || say "$s: no MRD cookie on a first answer; measuring without one"
  active+=("$s")
done
if [ ${#active[@]} -eq 0 ]; then say "no system to measure: no TLS figures"; exit 0; fi

n_runs=$(( $(wc -w <<< "$scenarios") * ${#active[@]} ))
n_warm=$(( $(tr ' ' '\n' <<< "$scenarios" | grep -vc '^keepalive' || true) * ${#active[@]} ))
say "${#active[@]} system(s) (${active[*]}), $n_runs runs of ${duration}s ($n_warm with ${warmup}s warm-up), $conns connections, about $(( n_runs * duration + n_warm * warmup + n_runs / 2 )) s"
say "pinning: proxies '${proxy_pin[*]:-none}', origin and load '${load_pin[*]:-none}'; haproxy $(haproxy -v 2>/dev/null | awk 'NR==1 {print $3}'), $(openssl version | cut -d' ' -f1-2)"

cpu_ticks() { local line f; line=$(< "/proc/$1/stat"); read -r -a f <<< "${line##*) }"; echo $(( f[11] + f[12] )); }
# host_cpus -> "cpuN busy total steal" per CPU, from /proc/stat
host_cpus() { awk '/^cpu[0-9]/ { t = 0; for (i = 2; i <= 9; i++) t += $i; print $1, t - $5 - $6, t, $9 }' /proc/stat; }

# run_one SCENARIO SYSTEM -> one line of key=value results on stdout (TLSBENCH format).
run_one() {
  local sc=$1 s=$2 mode ver key port c12 out pid=${pid_of[$2]} ck=${cookie_for[$2]}
  IFS=- read -r mode ver key <<< "$sc"
  kill -0 "$pid" 2>/dev/null || { echo "TLSBENCH failed=$s-exited"; return; }
  if [ "$ver" = plain ]; then port=${port_plain[$s]}; else
    if [ "$key" = rsa ]; then port=${port_rsa[$s]}; else port=${port_ec[$s]}; fi
    c12=$(cipher12 "$key")
  fi
  if [ "$mode" = keepalive ]; then
    local url cnf=() hdr=() b a wout rc=0
    if [ "$ver" = plain ]; then url="http://127.0.0.1:$port/"
    else url="https://127.0.0.1:$port/"; cnf=(env "OPENSSL_CONF=$(client_cnf "$ver" "$key")"); fi
    [ -n "$ck" ] && hdr=(-H "Cookie: $ck")
    b=$(cpu_ticks "$pid"); h0=$(host_cpus)
    wout=$("${cnf[@]}" "${load_pin[@]}" timeout $((duration + 30)) wrk -t1 -c"$conns" -d"${duration}s" --latency "${hdr[@]}" "$url" 2>&1) || rc=$?
    a=$(cpu_ticks "$pid"); h1=$(host_cpus)
    echo "$wout" > "$run/wrk-$sc-$s.txt"
    local hostcpu
    hostcpu=$(paste -d' ' <(echo "$h0") <(echo "$h1") | awk '{ dt = $7 - $3; b = b (NR > 1 ? "/" : "") (dt ? int(100 * ($6 - $2) / dt + 0.5) : 0); st += $8 - $4; tt += dt }
      END { printf "cpu_busy_pct=%s steal_pct=%.1f", b, tt ? 100 * st / tt : 0 }')
    awk -v dc=$((a - b)) -v hz="$hz" -v rc="$rc" -v hostcpu="$hostcpu" '
      function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; if (v ~ /s$/) return v * 1e6; return v }
      /requests in/ { done = $1; secs = $(NF - 2); sub(/s,$/, "", secs) }
      /Requests\/sec/ { rate = $2 }
      $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
      /Socket errors/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
      /Non-2xx/ { err += $NF }
      END {
        if (rc != 0 || done == "") { print "TLSBENCH failed=wrk"; exit }
        cpu = dc / hz
        printf "TLSBENCH mode=keepalive done=%d secs=%s rate=%.1f p50_us=%d p99_us=%d errors=%d proxy_cpu_s=%.3f proxy_cpu_us_per=%.2f proxy_busy_pct=%.1f client_busy_pct=- %s\n",
          done, secs, rate, p50, p99, err + 0, cpu, done ? cpu * 1e6 / done : 0, secs ? cpu * 100 / secs : 0, hostcpu
      }' <<< "$wout"
    return
  fi
  local args=(-m "$mode" -V "$ver" -c "$conns" -d "$duration" -w "$warmup" -C "$c12" -S "$suite13" -g "$groups"
              -s "$sni" -P "$pid" -q)
  [ -n "$ck" ] && args+=(-H "$ck")
  out=$("${load_pin[@]}" timeout $((duration + warmup + 40)) "$tlsbench" "${args[@]}" "127.0.0.1:$port" 2> "$run/tlsbench-$sc-$s.err") || true
  grep -m1 '^TLSBENCH' <<< "$out" || echo "TLSBENCH failed=tlsbench"
}

declare -A res
i=0
for sc in $scenarios; do
  n=${#active[@]}
  for j in $(seq 0 $((n - 1))); do
    s=${active[$(( (i + j) % n ))]}   # order rotated per scenario: drift hits both alike
    say "$sc: $s"
    res[$sc/$s]=$(run_one "$sc" "$s")
    echo "$sc $s ${res[$sc/$s]}" >> "$run/results.txt"
  done
  i=$((i + 1))
done

# ---- tables -----------------------------------------------------------------------
kv() { # LINE KEY -> value
  local w
  for w in $1; do [ "${w%%=*}" = "$2" ] && { echo "${w#*=}"; return; }; done
  echo ""
}
title() {
  local mode ver key what k
  IFS=- read -r mode ver key <<< "$1"
  case $mode in
    full) what="full handshakes: a new connection per request (handshake, GET, close)" ;;
    resume) what="resumed handshakes: a new connection per request, resuming the slot's last session" ;;
    keepalive) what="requests over kept-alive connections (wrk)" ;;
  esac
  case $key in ec) k="EC P-256 certificate" ;; rsa) k="RSA-2048 certificate" ;; *) k="" ;; esac
  if [ "$ver" = plain ]; then echo "plain HTTP, $what"; else echo "TLS $ver, $k, $what"; fi
}

echo
echo "TLS termination, $conns connections, ${duration} s per run ($(date -Is), $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))"
echo "proxy CPU = utime+stime of the proxy process over the measured window; per core = 1e6 / CPU µs per unit;"
echo "proxy/client = share of one core each used; cpus = busy % of each CPU (${proxy_pin[*]:+proxy on CPU 1, load and origin on CPU 0})"
fmt='%-12s %8s %7s %7s %9s %8s %6s %6s %7s %7s %7s %6s  %s\n'
for sc in $scenarios; do
  mode=${sc%%-*}
  unit=conn; [ "$mode" = keepalive ] && unit=req
  echo
  echo "== $sc: $(title "$sc")"
  printf "$fmt" system "$unit/s" 'p50 ms' 'p99 ms' "µs/$unit" "$unit/s/core" proxy client cpus 'rate÷ha' 'CPU÷ha' errors "$([ "$mode" = keepalive ] || echo negotiated)"
  base=${res[$sc/haproxy-1t]:-}
  notes=()
  for s in "${active[@]}"; do
    r=${res[$sc/$s]}
    if [ -n "$(kv "$r" failed)" ]; then printf '%-12s  no figure: %s failed (rerun with TLS_KEEP=1 and see its output in the run folder)\n' "$s" "$(kv "$r" failed)"; continue; fi
    rate=$(kv "$r" rate) cpu=$(kv "$r" proxy_cpu_us_per)
    neg=""
    if [ "$mode" != keepalive ]; then
      neg="$(kv "$r" version) $(kv "$r" cipher) $(kv "$r" group) $(kv "$r" key), tickets/conn $(kv "$r" tickets_per_conn)"
      [ "$mode" = resume ] && neg+=", resumed $(kv "$r" resumed)/$(kv "$r" handshakes)"
    fi
    [ "$(kv "$r" steal_pct)" = 0.0 ] || neg+=" (steal $(kv "$r" steal_pct)%)"
    if [ "$mode" = resume ]; then
      awk -v r="$(kv "$r" resumed)" -v h="$(kv "$r" handshakes)" 'BEGIN { exit !(h > 0 && r < 0.95 * h) }' &&
        notes+=("note: $s resumed only $(kv "$r" resumed) of $(kv "$r" handshakes) handshakes (tickets/conn $(kv "$r" tickets_per_conn)): its figures mix full and resumed handshakes")
    fi
    if [ "$mode" != keepalive ] && [ -n "$base" ] && [ -z "$(kv "$base" failed)" ] && [ "$s" != haproxy-1t ]; then
      for k in version cipher group key; do
        [ "$(kv "$r" $k)" = "$(kv "$base" $k)" ] || notes+=("note: $s negotiated $k $(kv "$r" $k), haproxy-1t $(kv "$base" $k): not the same work")
      done
    fi
    [ "$(kv "$r" errors)" = 0 ] || notes+=("note: $s had errors: $(tr ' ' '\n' <<< "$r" | grep -E '^(err_|warmup_errors|errors)' | grep -v '=0$' | tr '\n' ' ')")
    rr=- cr=-
    if [ -n "$base" ] && [ -z "$(kv "$base" failed)" ]; then
      rr=$(awk -v a="$rate" -v b="$(kv "$base" rate)" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
      cr=$(awk -v a="$cpu" -v b="$(kv "$base" proxy_cpu_us_per)" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    fi
    pct() { local v=$1; [ "$v" = - ] && { echo -; return; }; printf '%.0f%%' "$v"; }
    printf "$fmt" "$s" "$(printf %.0f "$rate")" \
      "$(awk -v v="$(kv "$r" p50_us)" 'BEGIN { printf "%.2f", v / 1000 }')" \
      "$(awk -v v="$(kv "$r" p99_us)" 'BEGIN { printf "%.2f", v / 1000 }')" \
      "$(printf %.1f "$cpu")" "$(awk -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", 1e6 / c; else print "-" }')" \
      "$(pct "$(kv "$r" proxy_busy_pct)")" "$(pct "$(kv "$r" client_busy_pct)")" "$(kv "$r" cpu_busy_pct)" \
      "$rr" "$cr" "$(kv "$r" errors)" "$neg"
  done
  for n in "${notes[@]}"; do echo "$n"; done
done
echo
echo "Rates are the load generator's when CPU 0 is ~100 % and the proxy well under 100 % (the usual case for full"
echo "handshakes: the client verifies a signature and does the same key exchange): then compare µs per unit, not rates."
