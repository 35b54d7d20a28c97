#!/usr/bin/env bash
# The end-to-end stream figure: signals/s through the stream processor from a pre-filled raw
# topic beside a bare consumer and a copier of the same records (without and with a transaction
# per batch), in turn ROUNDS times; medians and
# the ratio. Uses its own Kafka broker (port 19093) and the stack's ClickHouse for the rules.
#
#   scripts/bench/stream.sh            (RECORDS=50000 ROUNDS=3 by default)
source "$(dirname "$0")/lib.sh"
records=${RECORDS:-50000}
rounds=${ROUNDS:-3}

scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building release binaries"
cargo build -q --release --bin sigstage --example stream_throughput

export SIGSTAGE_KAFKA_BROKERS=127.0.0.1:19093
export SIGSTAGE_CLICKHOUSE_DATABASE=sigstage_bench
export SIGSTAGE_TOPIC_PREFIX=bench.
export RUST_LOG=warn
private_kafka 19093
target/release/sigstage migrate 2>/dev/null
say "$rounds rounds of $records signals: a bare consumer, a copier without and with transactions, and the processor, in turn"
target/release/examples/stream_throughput "$records" "$rounds"
