#!/usr/bin/env bash
# A/B of two node builds in one run: idle memory and broadcast (19,000 viewers), connect
# storm (15,000), like-storm (2,000 x 32 unacked, memory store), alternating the builds for
# two rounds under the same load tool, so machine drift hits both alike.
#   BASE=/path/to/old/livetally NEW=target/release/livetally bash scripts/bench-ab.sh
# The full reports go to $OUT (default: a fresh temporary folder); the key lines to stdout.
set -u
: "${BASE:?set BASE to the old build}" "${NEW:=target/release/livetally}"
TOOL=${TOOL:-$NEW}
OUT=${OUT:-$(mktemp -d)}
T=test-operator-token-0123456789

run() { # name node_bin port node_flags... -- load_flags...
    local name=$1 bin=$2 port=$3
    shift 3
    local nflags=()
    while [ "$1" != "--" ]; do nflags+=("$1"); shift; done
    shift
    # Every run opens more than 1,000 sockets, which the load tool binds 1,000 per source
    # address: a node's default --max-sockets-per-client (1000) would be met exactly, so it
    # is raised, as in every benchmark (scripts/bench-common.sh). Through its variable,
    # which a BASE build from before the flag ignores (it would refuse the flag itself).
    # The connect budget likewise: 15,000 a minute is a bucket of 5,000 per address.
    LIVETALLY_MAX_SOCKETS_PER_CLIENT=5000 LIVETALLY_MAX_CONNECTS_PER_CLIENT=15000 RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" \
        --operator-token "$T" "${nflags[@]}" &
    local pid=$!
    sleep 0.5
    "$TOOL" load --url "ws://127.0.0.1:$port" --operator-token "$T" --create --node-pid "$pid" "$@" \
        > "$OUT/$name.txt" 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null
    echo "== $name"
    grep -E "^(machine load|connected|acked/s|stats lag|node memory|node cpu)" "$OUT/$name.txt"
    sleep 2
}

i=0
for round in 1 2; do
    for who in base new; do
        if [ "$who" = base ]; then B=$BASE; else B=$NEW; fi
        i=$((i + 1))
        run "idle-$who-$round" "$B" $((19300 + i)) -- --campaign "idle$i" --viewers 19000 --processes 2 --rate 50 --duration 20s
        i=$((i + 1))
        run "storm-$who-$round" "$B" $((19300 + i)) -- --campaign "storm$i" --viewers 15000 --rate 0 --duration 2s
        i=$((i + 1))
        run "likes-$who-$round" "$B" $((19300 + i)) --max-interactions-per-sec 100000 -- \
            --campaign "likes$i" --viewers 2000 --rate max --max-unacked 32 --duration 10s
    done
done
echo "reports in $OUT"
