#!/usr/bin/env bash
# Crash: node A holds VIEWERS viewers (from `livetally load`), node B shares its Redis.
# A is killed with SIGKILL; prints how long B's total takes to drop A's viewers, against
# the bound presence-ttl + one tick (defaults 10 s + 1 s).
# Usage: bash scripts/bench-crash.sh   (env: VIEWERS, NODE_FLAGS, PORT, REDIS_PORT)
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${VIEWERS:-15000}
NODE_FLAGS=${NODE_FLAGS:-}
PORT=${PORT:-19300}
REDIS_PORT=${REDIS_PORT:-16391}
# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh
for n in a b; do
    port=$PORT
    [ "$n" = b ] && port=$((PORT + 1))
    # shellcheck disable=SC2086
    RUST_LOG=warn $B serve --listen "127.0.0.1:$port" --node-id "node-$n" \
        --redis "redis://127.0.0.1:$REDIS_PORT" --operator-token "$T" "${PER_CLIENT[@]}" $NODE_FLAGS \
        >"$workdir/node-$n.log" 2>&1 &
    pids+=($!)
    until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.2; done
done
node_a=${pids[1]}
viewers_on_b() {
    curl -sf "http://127.0.0.1:$((PORT + 1))/api/v1/campaigns/crash/stats" | grep -o '"viewers":[0-9]*' | cut -d: -f2
}
$B load --url "ws://127.0.0.1:$PORT" --campaign crash --create --operator-token "$T" \
    --viewers "$VIEWERS" --rate 0 --duration 120s >"$workdir/load.log" 2>&1 &
load=$!
until [ "$(viewers_on_b)" = "$VIEWERS" ]; do sleep 0.1; done
echo "node B counts $VIEWERS viewers on node A; killing node A (SIGKILL)"
kill -KILL "$node_a"
start=$(date +%s.%N)
until [ "$(viewers_on_b)" = 0 ]; do sleep 0.02; done
end=$(date +%s.%N)
echo "node B's total reached 0 after $(echo "$end - $start" | bc) s"
kill "$load" 2>/dev/null || true
