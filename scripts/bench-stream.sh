#!/usr/bin/env bash
# The end-to-end stream figure: signals/s through the stream processor from a pre-filled raw
# topic beside a bare consumer reading the same records, alternating ROUNDS times; medians and
# the ratio. Uses its own Tansu (memory:// storage, port 19093: the sqlite engine reads a backlog
# in quadratic time, so it would measure the broker) and the stack's ClickHouse for the rules.
#
#   scripts/bench-stream.sh            (RECORDS=50000 ROUNDS=3 by default)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH=$HOME/.cargo/bin:$PATH
records=${RECORDS:-50000}
rounds=${ROUNDS:-3}
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
say() { printf 'bench: %s\n' "$*" >&2; }

scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building release binaries"
cargo build -q --release --bin sigstage --example stream_throughput

export SIGSTAGE_KAFKA_BROKERS=127.0.0.1:19093
export SIGSTAGE_CLICKHOUSE_DATABASE=sigstage_bench
export SIGSTAGE_TOPIC_PREFIX=bench.
export RUST_LOG=warn
say "starting a memory:// Tansu on 127.0.0.1:19093"
(cd "$work" && exec tansu broker --listener-url tcp://127.0.0.1:19093 \
    --advertised-listener-url tcp://127.0.0.1:19093 --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1) &
pids+=($!)
target/release/sigstage migrate 2>/dev/null
say "$rounds rounds of $records signals, alternating a bare consumer and the processor"
target/release/examples/stream_throughput "$records" "$rounds"
