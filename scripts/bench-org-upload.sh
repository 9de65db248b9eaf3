#!/usr/bin/env bash
# Uploads a seed-sized org (scripts/gen-org.py: 546,000 units, six levels, Chinese names,
# ~21 MB of CSV) to one node and reports the upload's time and how much the node's memory
# grew: VmHWM (the peak resident set) after the upload less VmRSS before it. The target
# (docs/operations.md): <= 30 s and <= 150 MB.
# Usage: bash scripts/bench-org-upload.sh   (env: UNITS, STORE=redis|memory, PORT, REDIS_PORT)
set -euo pipefail
cd "$(dirname "$0")/.."
UNITS=${UNITS:-546000}
STORE=${STORE:-redis}
PORT=${PORT:-19300}
REDIS_PORT=${REDIS_PORT:-16391}
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh
python3 scripts/gen-org.py --units "$UNITS" >"$workdir/org.csv"
store_flags=()
if [ "$STORE" = redis ]; then store_flags=(--redis "redis://127.0.0.1:$REDIS_PORT"); fi
RUST_LOG=warn $B serve --listen "127.0.0.1:$PORT" --operator-token "$T" "${store_flags[@]}" \
    >"$workdir/node.log" 2>&1 &
node=$!
pids+=("$node")
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.2; done
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$node/status"; }
before=$(kib VmRSS)
start=$(date +%s.%N)
status=$(curl -s -o "$workdir/reply.json" -w '%{http_code}' -X PUT \
    -H "Authorization: Bearer $T" -H 'Content-Type: text/csv' \
    --data-binary "@$workdir/org.csv" "http://127.0.0.1:$PORT/api/v1/orgs/seed")
end=$(date +%s.%N)
peak=$(kib VmHWM)
after=$(kib VmRSS)
# A unit read answers (from the tree the upload left in the node's cache).
curl -sf -H "Authorization: Bearer $T" "http://127.0.0.1:$PORT/api/v1/orgs/seed/units/110000546000" >/dev/null
echo "reply $status: $(cat "$workdir/reply.json")"
if [ "$STORE" = redis ]; then
    echo "redis used_memory: $(redis-cli -p "$REDIS_PORT" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r') bytes"
fi
awk -v u="$UNITS" -v b="$(stat -c %s "$workdir/org.csv")" -v s="$start" -v e="$end" \
    -v r0="$before" -v hw="$peak" -v r1="$after" -v st="$STORE" -v code="$status" \
    'BEGIN { printf "store=%s units=%d bytes=%d seconds=%.2f rss_before_mib=%.0f rss_peak_mib=%.0f rss_after_mib=%.0f rss_growth_mib=%.0f ok=%s\n",
        st, u, b, e - s, r0 / 1024, hw / 1024, r1 / 1024, (hw - r0) / 1024,
        ((code == 201 || code == 200) && e - s <= 30 && (hw - r0) / 1024 <= 150) ? "true" : "false" }'
