#!/usr/bin/env bash
# The broadcast against the kernel's floor (issue 13): node CPU per delivered stats frame of
# livetally (memory store, release build) and of the floor program (one thread writing one
# pre-encoded frame to every socket), ROUNDS runs of each, alternating, with VIEWERS idle
# viewers over PROCESSES load processes (each binds its own 127.x.y.z source addresses, a
# fresh range per run). livetally also gets a trickle of RATE likes/s so every tick changes;
# its pings and the likes are in its CPU. CPU is the whole process (utime + stime from
# /proc) over the load phase, divided by the frames the viewers received.
#
#   bash scripts/bench-fanout.sh
#   VIEWERS=18500 ROUNDS=3 DURATION=20s LT=target/release/livetally bash scripts/bench-fanout.sh
#   NODE=/path/to/older/livetally bash scripts/bench-fanout.sh     # that build against the floor
#   NODES="/tmp/old/livetally target/release/livetally" bash scripts/bench-fanout.sh
#       # several builds in one run: each round runs each build, then the floor
#
# FLOOR_SRC: the floor program's sources (default /work/shared/bench/fanout); it is built
# in its own folder (FLOOR_DIR, default /tmp/fanout-floor), never in this repository.
# Reports go to OUT (default: a fresh temporary folder). Ends with a line
#   fanout: livetally_us_per_frame=X floor_us_per_frame=Y ratio=Z lag_p99_ms=W
# (medians over the rounds), one per build when NODES names several (`livetally` is then
# the build's file name with its folder: `old/livetally`).
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS=${VIEWERS:-18500}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-20s}
PROCESSES=${PROCESSES:-3}
RATE=${RATE:-20}
FLOOR_SRC=${FLOOR_SRC:-/work/shared/bench/fanout}
FLOOR_DIR=${FLOOR_DIR:-/tmp/fanout-floor}
LT=${LT:-target/release/livetally}
# The node under test (default: LT, which is also the load tool). An older build works
# here; the tool must have `load --bare`.
NODE=${NODE:-$LT}
NODES=${NODES:-$NODE}
OUT=${OUT:-$(mktemp -d)}
T=bench-operator-token-0123456789

if [ "$LT" = target/release/livetally ]; then cargo build --release --locked --quiet; fi
mkdir -p "$FLOOR_DIR"
cp -r "$FLOOR_SRC/Cargo.toml" "$FLOOR_SRC/Cargo.lock" "$FLOOR_SRC/src" "$FLOOR_DIR/"
(cd "$FLOOR_DIR" && cargo build --release --quiet)
FLOOR=$FLOOR_DIR/target/release/fanout-floor

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT

# run NAME PORT NET -- server command...: starts the server, loads it, stops it.
run() {
    local name=$1 port=$2 net=$3
    shift 4
    local load_flags=(--campaign "$name" --viewers "$VIEWERS" --processes "$PROCESSES"
        --duration "$DURATION" --source-ip "127.$net.0.2" --json)
    if [ "${1##*/}" = fanout-floor ]; then
        load_flags+=(--bare --rate 0)
    else
        load_flags+=(--create --operator-token "$T" --rate "$RATE")
    fi
    # The connect budget through its variable, which builds from before the flag ignore.
    LIVETALLY_MAX_CONNECTS_PER_CLIENT=15000 RUST_LOG=warn "$@" >"$OUT/$name.server.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    sleep 0.5
    "$LT" load --url "ws://127.0.0.1:$port" --node-pid "$pid" "${load_flags[@]}" >"$OUT/$name.json" \
        2>"$OUT/$name.load.log" || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # Let the previous run's sockets close before the next one measures.
    sleep 3
}

# A build's label: "livetally" alone; with several builds, its folder and file name.
label() {
    if [ "$(wc -w <<<"$NODES")" -eq 1 ]; then echo livetally; else
        basename "$(dirname "$1")" | tr -c 'A-Za-z0-9_.\n-' _ | sed 's/$/-livetally/'
    fi
}
LABELS=()
for n in $NODES; do LABELS+=("$(label "$n")"); done
for round in $(seq 1 "$ROUNDS"); do
    i=0
    for n in $NODES; do
        port=$((19400 + 10 * i + round))
        run "${LABELS[$i]}$round" "$port" $((20 + 10 * round + i)) -- \
            "$n" serve --listen "127.0.0.1:$port" --operator-token "$T" --max-sockets-per-client 5000
        i=$((i + 1))
    done
    run "floor$round" $((19500 + round)) $((29 + 10 * round)) -- \
        "$FLOOR" --listen "127.0.0.1:$((19500 + round))" --tick-ms 1000
done

python3 - "$OUT" "$ROUNDS" "${LABELS[@]}" <<'EOF'
import json, statistics, sys
out, rounds, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(name):
    try:
        with open(f"{out}/{name}.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
print(f"{'run':<24} {'load avg (start)':<18} {'connected':>9} {'frames':>8} {'cpu s':>7} {'µs/frame':>9} {'lag p99 ms':>10}")
per = {who: [] for who in builds + ["floor"]}
lags = {who: [] for who in builds}
for r in range(1, rounds + 1):
    for who in builds + ["floor"]:
        rep = load(f"{who}{r}")
        if rep is None or not rep.get("node"):
            print(f"{who}{r:<3}      (no report: see {out}/{who}{r}.load.log)")
            continue
        node = rep["node"]
        us = node.get("cpu_us_per_frame")
        lag = rep["stats"]["lag"]["p99_ms"] if who != "floor" else None
        load_avg = " ".join(f"{x:.2f}" for x in rep["machine_load_start"])
        print(f"{who + str(r):<24} {load_avg:<18} {rep['connect']['connected']:>9} {rep['stats']['frames']:>8} "
              f"{node.get('cpu_seconds') or 0:>7.2f} {us or 0:>9.2f} {'' if lag is None else f'{lag:.1f}':>10}")
        if us:
            per[who].append(us)
        if lag is not None:
            lags[who].append(lag)
med = {k: statistics.median(v) if v else float("nan") for k, v in per.items()}
print(f"reports in {out}")
for who in builds:
    lag = statistics.median(lags[who]) if lags[who] else float("nan")
    name = "livetally" if who == "livetally" else f"livetally({who.removesuffix('-livetally')})"
    print(f"fanout: {name}_us_per_frame={med[who]:.2f} floor_us_per_frame={med['floor']:.2f} "
          f"ratio={med[who] / med['floor']:.2f} lag_p99_ms={lag:.1f}")
EOF
