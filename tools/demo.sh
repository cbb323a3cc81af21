#!/usr/bin/env bash
# make run: the edge on its demo clusters. Starts one test origin process
# serving every endpoint of conf/examples/edge.json (each answers with its
# cluster and endpoint name), then meridian in the foreground on that file.
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
conf=conf/examples/edge.json
# git keeps no read bits: make the example's secrets private, as meridian
# expects of a keys or token file (it warns otherwise).
chmod 600 conf/examples/session.keys conf/examples/admin.token
bin=${DEMO_BIN_DIR:-build/release}
# The example keeps its state_file and audit log here (git-ignored).
mkdir -p -m 0750 "$(dirname "$conf")/state"

# "--cluster NAME ADDR..." for every cluster of the example.
mapfile -t origin_args < <(python3 - "$conf" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
for region in cfg["regions"]:
    for cluster in region["clusters"]:
        print("--cluster")
        print(cluster["name"])
        for endpoint in cluster["endpoints"]:
            print(endpoint)
PY
)

"$bin/origin" "${origin_args[@]}" > /dev/null &
origin_pid=$!
trap 'kill "$origin_pid" 2>/dev/null || true; wait "$origin_pid" 2>/dev/null || true' EXIT

listen=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listeners"][0]["address"])' "$conf")
cat <<EOT
meridian demo: origins for every cluster of $conf are up.
  try:   curl -si http://$listen/
  stop:  Ctrl-C
EOT
"$bin/meridian" -c "$conf"
