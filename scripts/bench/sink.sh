#!/usr/bin/env bash
# The sink figures: ClickHouse insert rows/s through the sink's write path beside
# clickhouse-client inserting the same rows from a file (alternating rounds, medians); webhook
# deliveries/s to a healthy local receiver beside a bare signed-POST loop to it, alone and beside
# one that never answers (alternating rounds, medians); live webhook
# delivery latency alone and during a backfill of history to the same endpoint; and the end-to-end latency from a 202 to the row being
# visible in ClickHouse under steady load, through `sigstage run`. Uses its own Kafka broker
# (port 19094) and the stack's ClickHouse (database sigstage_bench).
#
#   scripts/bench/sink.sh     (ROWS=100000 ROUNDS=3 EVENTS=20000 BACKFILL=100000 BACKFILL_RATE=2000 RATE=200 DURATION=15)
source "$(dirname "$0")/lib.sh"

scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building release binaries"
cargo build -q --release --bin sigstage --example sink_insert --example webhook_throughput --example webhook_backfill --example latency

export SIGSTAGE_KAFKA_BROKERS=127.0.0.1:19094
export SIGSTAGE_CLICKHOUSE_DATABASE=sigstage_bench
export SIGSTAGE_TOPIC_PREFIX=bench-sink-$$.
export SIGSTAGE_HTTP_ADDR=127.0.0.1:18090
export RUST_LOG=warn
private_kafka 19094
target/release/sigstage migrate 2>/dev/null

say "ClickHouse inserts: ${ROUNDS:-3} rounds of ${ROWS:-100000} rows, alternating clickhouse-client and the sink"
target/release/examples/sink_insert "${ROWS:-100000}" "${ROUNDS:-3}"

say "webhook deliveries: ${ROUNDS:-3} rounds of ${EVENTS:-20000} events to a healthy receiver: a bare signed-POST loop, then the scheduler alone, then beside a hanging endpoint"
target/release/examples/webhook_throughput "${EVENTS:-20000}" "${ROUNDS:-3}"

say "webhook backfill: live delivery latency alone, then during a backfill of ${BACKFILL:-100000} events at ${BACKFILL_RATE:-2000}/s"
target/release/examples/webhook_backfill "${BACKFILL:-100000}" "${BACKFILL_RATE:-2000}"

say "latency: ${RATE:-200} signals/s for ${DURATION:-15} s through sigstage run"
key=$(target/release/sigstage keys create --org latency 2>/dev/null)
start_run
target/release/examples/latency http://127.0.0.1:18090 "$key" "${RATE:-200}" "${DURATION:-15}"
