#!/usr/bin/env bash
# A/B of two node builds in one run: idle memory and broadcast (19,000 viewers), connect
# storm (15,000), like-storm (2,000 x 32 unacked, memory store), alternating the builds for
# ROUNDS rounds (default 2) under the same load tool, so machine drift hits both alike. Each
# round also storms the bare tokio-tungstenite server (the floor program of
# scripts/bench-fanout.sh, FLOOR_SRC), so the storm's ratio to it is read within the run.
#   BASE=/path/to/old/livetally NEW=target/release/livetally bash scripts/bench-ab.sh
#   ONLY=storm ROUNDS=5 BASE=... bash scripts/bench-ab.sh     # the storms alone
#   REDIS_PORT=16392 BASE=... bash scripts/bench-ab.sh   # + the like-storm on Redis
# FLOOR_BACKLOG=8192 also storms a copy of the floor whose listener takes that accept backlog
# (the node's, src/util/listen.rs) instead of tokio's 128: with 128 the floor's one thread
# drops SYNs whenever it lags, and those connects wait for the client's 1 s retransmit.
# ONLY: a space-separated subset of "idle storm likes redis" (default: all but redis, which
# runs when REDIS_PORT is set: each of its runs gets a fresh throwaway redis-server there,
# so builds of different store schemas never meet). The full reports go to $OUT (default: a fresh temporary
# folder); the key lines to stdout, then the medians of the storms and their ratio to the
# floor.
set -u
: "${BASE:?set BASE to the old build}" "${NEW:=target/release/livetally}"
TOOL=${TOOL:-$NEW}
OUT=${OUT:-$(mktemp -d)}
ROUNDS=${ROUNDS:-2}
ONLY=${ONLY:-idle storm likes${REDIS_PORT:+ redis}}
FLOOR_SRC=${FLOOR_SRC:-/work/shared/bench/fanout}
FLOOR_DIR=${FLOOR_DIR:-/tmp/fanout-floor}
T=test-operator-token-0123456789

# The floor is built in its own folder, never in this repository (as in bench-fanout.sh).
FLOOR="" DEEP=""
if [[ " $ONLY " == *" storm "* ]]; then
    mkdir -p "$FLOOR_DIR"
    cp -r "$FLOOR_SRC/Cargo.toml" "$FLOOR_SRC/Cargo.lock" "$FLOOR_SRC/src" "$FLOOR_DIR/"
    (cd "$FLOOR_DIR" && cargo build --release --quiet) && FLOOR=$FLOOR_DIR/target/release/fanout-floor
    if [ -n "${FLOOR_BACKLOG:-}" ]; then
        mkdir -p "$FLOOR_DIR-backlog"
        cp -r "$FLOOR_SRC/Cargo.toml" "$FLOOR_SRC/Cargo.lock" "$FLOOR_SRC/src" "$FLOOR_DIR-backlog/"
        # The one change: the listener's backlog (the copy is ours, the original stays as it is).
        sed -i "s|tokio::net::TcpListener::bind(&listen).await.unwrap()|{ let s = tokio::net::TcpSocket::new_v4().unwrap(); s.set_reuseaddr(true).unwrap(); s.bind(listen.parse().unwrap()).unwrap(); s.listen($FLOOR_BACKLOG).unwrap() }|" \
            "$FLOOR_DIR-backlog/src/main.rs"
        grep -q "listen($FLOOR_BACKLOG)" "$FLOOR_DIR-backlog/src/main.rs" &&
            (cd "$FLOOR_DIR-backlog" && cargo build --release --quiet) && DEEP=$FLOOR_DIR-backlog/target/release/fanout-floor
    fi
fi

run() { # name node_bin port node_flags... -- load_flags...
    local name=$1 bin=$2 port=$3
    shift 3
    local nflags=()
    while [ "$1" != "--" ]; do nflags+=("$1"); shift; done
    shift
    local pid redis=""
    if [[ $name == redis-* ]]; then
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$OUT" \
            >"$OUT/$name.redis.log" 2>&1 &
        redis=$!
        until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
    fi
    if [ "$bin" = "$FLOOR" ] || [ "$bin" = "$DEEP" ]; then
        "$bin" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
        pid=$!
        sleep 0.5
        "$TOOL" load --url "ws://127.0.0.1:$port" --bare --node-pid "$pid" "$@" >"$OUT/$name.txt" 2>&1
    else
        # Every run opens more than 1,000 sockets, which the load tool binds 1,000 per source
        # address: a node's default --max-sockets-per-client (1000) would be met exactly, so it
        # is raised, as in every benchmark (scripts/bench-common.sh). Through its variable,
        # which a BASE build from before the flag ignores (it would refuse the flag itself).
        # The connect budget likewise: 15,000 a minute is a bucket of 5,000 per address.
        LIVETALLY_MAX_SOCKETS_PER_CLIENT=5000 LIVETALLY_MAX_CONNECTS_PER_CLIENT=15000 RUST_LOG=warn "$bin" serve \
            --listen "127.0.0.1:$port" --operator-token "$T" "${nflags[@]}" &
        pid=$!
        sleep 0.5
        "$TOOL" load --url "ws://127.0.0.1:$port" --operator-token "$T" --create --node-pid "$pid" "$@" \
            >"$OUT/$name.txt" 2>&1
    fi
    kill "$pid"
    wait "$pid" 2>/dev/null
    if [ -n "$redis" ]; then
        kill "$redis"
        wait "$redis" 2>/dev/null
    fi
    echo "== $name"
    grep -E "^(machine load|connected|acked/s|stats lag|node memory|node cpu)" "$OUT/$name.txt"
    sleep 2
}

i=0
for round in $(seq 1 "$ROUNDS"); do
    for who in base new; do
        if [ "$who" = base ]; then B=$BASE; else B=$NEW; fi
        i=$((i + 1))
        if [[ " $ONLY " == *" idle "* ]]; then
            run "idle-$who-$round" "$B" $((19300 + i)) -- --campaign "idle$i" --viewers 19000 --processes 2 --rate 50 --duration 20s
        fi
        i=$((i + 1))
        if [[ " $ONLY " == *" storm "* ]]; then
            run "storm-$who-$round" "$B" $((19300 + i)) -- --campaign "storm$i" --viewers 15000 --rate 0 --duration 2s
        fi
        i=$((i + 1))
        if [[ " $ONLY " == *" likes "* ]]; then
            run "likes-$who-$round" "$B" $((19300 + i)) --max-interactions-per-sec 100000 -- \
                --campaign "likes$i" --viewers 2000 --rate max --max-unacked 32 --duration 10s
        fi
        i=$((i + 1))
        if [[ " $ONLY " == *" redis "* ]]; then
            run "redis-$who-$round" "$B" $((19300 + i)) --max-interactions-per-sec 100000 \
                --redis "redis://127.0.0.1:${REDIS_PORT:?}" -- \
                --campaign "redis$i" --viewers 2000 --rate max --max-unacked 32 --duration 10s
        fi
    done
    i=$((i + 1))
    if [ -n "$FLOOR" ]; then
        run "storm-floor-$round" "$FLOOR" $((19300 + i)) -- --campaign "floor$i" --viewers 15000 --rate 0 --duration 2s
    fi
    i=$((i + 1))
    if [ -n "$DEEP" ]; then
        run "storm-deepfloor-$round" "$DEEP" $((19300 + i)) -- --campaign "floor$i" --viewers 15000 --rate 0 --duration 2s
    fi
done
echo "reports in $OUT"
# The storms: medians over the rounds, and each build's ratio to the floor's median.
python3 - "$OUT" "$ROUNDS" <<'EOF'
import re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
secs = {}
for who in ("base", "new", "floor", "deepfloor"):
    for r in range(1, rounds + 1):
        try:
            text = open(f"{out}/storm-{who}-{r}.txt").read()
        except OSError:
            continue
        m = re.search(r"^connected\s+(\d+)/(\d+) in ([\d.]+) s", text, re.M)
        if m and m.group(1) == m.group(2):
            secs.setdefault(who, []).append(float(m.group(3)))
if not secs:
    sys.exit(0)
med = {w: statistics.median(v) for w, v in secs.items()}
for who, v in secs.items():
    ratio = ""
    if who in ("base", "new"):
        ratio = "".join(f" = {med[who] / med[f]:.2f}x the {f}" for f in ("floor", "deepfloor") if f in med)
    print(f"storm {who}: median {med[who]:.3f} s of {', '.join(f'{s:.3f}' for s in v)}{ratio}")
EOF
