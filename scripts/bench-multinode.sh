#!/usr/bin/env bash
# One host, many nodes: VIEWERS viewers over NODES nodes sharing one port (--reuse-port)
# and one Redis, driven by `livetally load`. Reports the tool's table (the `viewers seen`
# row is what every node last told its viewers) and each node's sockets and memory.
# Usage: bash scripts/bench-multinode.sh   (env: NODES, VIEWERS, RAMP, NODE_FLAGS, PORT, REDIS_PORT, DURATION)
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-12}
VIEWERS=${VIEWERS:-200000}
PORT=${PORT:-19200}
REDIS_PORT=${REDIS_PORT:-16390}
DURATION=${DURATION:-30s}
RAMP=${RAMP:-4000}
NODE_FLAGS=${NODE_FLAGS:-}
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh
for i in $(seq 1 "$NODES"); do
    # shellcheck disable=SC2086  # NODE_FLAGS is a list of flags
    RUST_LOG=warn $B serve --listen "127.0.0.1:$PORT" --reuse-port --node-id "node-$i" \
        --redis "redis://127.0.0.1:$REDIS_PORT" --operator-token "$T" "${PER_CLIENT[@]}" $NODE_FLAGS \
        >"$workdir/node-$i.log" 2>&1 &
    pids+=($!)
done
node_pids=("${pids[@]:1}")
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do sleep 0.2; done
sleep 1
# Each node's open fds and VmRSS every 2 s; the busiest sample per node is reported.
(while sleep 2; do
    for p in "${node_pids[@]}"; do
        echo "$p $(find /proc/"$p"/fd -mindepth 1 2>/dev/null | wc -l) $(awk '/VmRSS/ {print $2}' /proc/"$p"/status 2>/dev/null)"
    done
done >"$workdir/samples") &
pids+=($!)
status=0
$B load --url "ws://127.0.0.1:$PORT" --campaign multinode --create --operator-token "$T" \
    --viewers "$VIEWERS" --ramp "$RAMP" --rate 0 --duration "$DURATION" | grep -v '^\[' || status=$?
echo "per node, busiest sample (pid, open fds, VmRSS KiB):"
sort -k1,1n -k2,2nr "$workdir/samples" | sort -k1,1n -u | sed 's/^/  /'
awk '{ if ($2 > m[$1]) { m[$1] = $2; r[$1] = $3 } } END { for (p in m) { f += m[p]; k += r[p] }
    printf "  all nodes: %d fds, %.0f MiB RSS\n", f, k / 1024 }' "$workdir/samples"
exit "$status"
