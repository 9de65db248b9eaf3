#!/usr/bin/env bash
# The seed's launch, simulated: VIEWERS viewers of ONE campaign on NODES virtual nodes
# (`livetally simulate`: the real tally, flusher and broadcaster, no sockets) against a
# 3-master Redis Cluster started here on free ports below 55535 (bus = port + 10000).
# Reports per phase (ramp, like-storm, kill) Redis commands/s and CPU per master and the
# per-node tick latency, the convergence after the ramp and the kill; its last line is
# `seed scale: viewers=... nodes=... exact=true|false ... units=N`. With ORG_UNITS (default
# the seed's 546,000; 0 for none) the campaign counts by an org of six levels, every viewer
# attributed to a village, and exact also means every unit at every level showed exactly
# the simulated numbers after the ramp, after the storm and after the kill.
# Exits non-zero unless exact.
# Every redis-server and the work directory are removed on exit, failure included.
# Usage: bash scripts/bench-seed-scale.sh
#   (env: VIEWERS, NODES, ORG_UNITS, MASTERS, SIM_FLAGS, KEEP=1, LIVETALLY_BIN=a built binary)
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${VIEWERS:-4500000}
NODES=${NODES:-300}
ORG_UNITS=${ORG_UNITS:-546000}
MASTERS=${MASTERS:-3}
SIM_FLAGS=${SIM_FLAGS:-}
B=${LIVETALLY_BIN:-target/release/livetally}
if [ -z "${LIVETALLY_BIN:-}" ]; then cargo build --release --quiet; fi
workdir=$(mktemp -d)
pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ -n "${KEEP:-}" ]; then echo "logs kept in $workdir"; else rm -rf "$workdir"; fi
}
trap cleanup EXIT INT TERM

# A port nothing listens on whose bus port (+10000) is free too, below 55535.
free_port() {
    python3 - <<'EOF'
import random, socket
def free(p):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); return True
    except OSError:
        return False
    finally:
        s.close()
while True:
    p = random.randint(20000, 45000)
    if p != 6379 and free(p) and free(p + 10000):
        print(p); break
EOF
}

ports=()
for i in $(seq 1 "$MASTERS"); do
    port=$(free_port)
    mkdir -p "$workdir/redis-$i"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir/redis-$i" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
        --lua-time-limit 5000 >"$workdir/redis-$i.log" 2>&1 &
    pids+=($!)
    ports+=("$port")
done
addrs=()
for port in "${ports[@]}"; do
    for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    addrs+=("127.0.0.1:$port")
done
redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$workdir/create.log" 2>&1
for port in "${ports[@]}"; do
    for _ in $(seq 1 200); do
        redis-cli -p "$port" cluster info | grep -q cluster_state:ok && break
        sleep 0.1
    done
done
urls=$(printf 'redis://%s,' "${addrs[@]}")
masters=$(IFS=,; echo "${addrs[*]}")
slot=$(redis-cli -p "${ports[0]}" cluster keyslot 'lt:{c:seed-launch}:meta')
echo "cluster: ${addrs[*]} (the campaign's keys are in slot $slot)"
status=0
# shellcheck disable=SC2086  # SIM_FLAGS is a list of flags
$B simulate --redis-cluster "${urls%,}" --masters "$masters" --viewers "$VIEWERS" --nodes "$NODES" \
    --org-units "$ORG_UNITS" $SIM_FLAGS || status=$?
exit "$status"
