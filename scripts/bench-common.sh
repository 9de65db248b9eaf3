# Sourced by the bench-*.sh scripts: builds the release binary, makes a work directory,
# starts a throwaway redis-server on $REDIS_PORT, and on exit stops every process whose
# pid is in `pids` (KEEP=1 keeps the work directory and its logs).
# shellcheck shell=bash
# shellcheck disable=SC2034  # T and B are used by the scripts that source this
T=bench-operator-token-0123456789
# Node flag for runs above 1,000 sockets: the load tool binds 1,000 sockets per source
# address and a node refuses a client's 1,001st (--max-sockets-per-client, default 1000);
# 5,000 leaves room for a previous run's sockets still closing and for --sockets-per-ip up
# to 5,000 (the tool's default before the limit). The limit stays on, so its cost is measured.
# The connect budget likewise: 15,000 a minute is a bucket of 5,000 per source address.
# shellcheck disable=SC2034
PER_CLIENT=(--max-sockets-per-client 5000 --max-connects-per-client 15000)
# shellcheck disable=SC2034
B=target/release/livetally
cargo build --release --quiet
workdir=$(mktemp -d)
pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    if [ -n "${KEEP:-}" ]; then echo "logs kept in $workdir"; else rm -rf "$workdir"; fi
}
trap cleanup EXIT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" \
    >"$workdir/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
