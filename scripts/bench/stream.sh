#!/usr/bin/env bash
# The end-to-end stream figure: signals/s through the stream processor from a pre-filled raw
# topic beside a bare consumer and a copier of the same records (without and with a transaction
# per batch), in turn ROUNDS times; medians and
# the ratio. Uses its own Kafka broker (port 19093) and the stack's ClickHouse for the rules.
#
#   scripts/bench/stream.sh            (RECORDS=50000 ROUNDS=3 by default)
#
# With FLAME=OUT.svg, the run is sampled by perf at 499 Hz with DWARF call stacks and drawn to
# OUT.svg with inferno (both installed when missing); the processor's own frames are under
# `stream::`, and librdkafka's `rdk:broker*` threads serve every client of the run. See
# docs/perf/README.md.
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
if [ -z "${FLAME:-}" ]; then
    target/release/examples/stream_throughput "$records" "$rounds"
    exit
fi
command -v perf >/dev/null || { say "installing perf (Debian's linux-perf)"; apt-get install -y -q linux-perf >/dev/null; }
command -v inferno-flamegraph >/dev/null || { say "installing inferno 0.12.3"; cargo install -q inferno --version 0.12.3 --locked; }
perf record -q -F 499 --call-graph dwarf,16384 -o "$work/perf.data" -- \
    target/release/examples/stream_throughput "$records" "$rounds"
say "folding and drawing $FLAME"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
mkdir -p "$(dirname "$FLAME")"
inferno-flamegraph --title "make bench-stream, $rounds round(s) of $records signals ($(git rev-parse --short HEAD))" \
    "$work/folded" >"$FLAME"
say "wrote $FLAME"
