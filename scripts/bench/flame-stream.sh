#!/usr/bin/env bash
# A flame graph of `make bench-stream`'s run (one round: fill, bare consumer, copiers, then the
# stream processor), sampled with perf at 499 Hz with DWARF call stacks, folded and drawn with
# inferno. The processor's own frames are under `stream::`; librdkafka's threads (`rdk:broker*`)
# serve every client of the run.
#
#   scripts/bench/flame-stream.sh docs/perf/stream-after.svg      (RECORDS=50000 by default)
source "$(dirname "$0")/lib.sh"
out=${1:?usage: scripts/bench/flame-stream.sh OUT.svg}
records=${RECORDS:-50000}

command -v perf >/dev/null || { say "installing perf (Debian's linux-perf)"; apt-get install -y -q linux-perf >/dev/null; }
command -v inferno-flamegraph >/dev/null || { say "installing inferno 0.12.3"; cargo install -q inferno --version 0.12.3 --locked; }
scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building release binaries"
cargo build -q --release --bin sigstage --example stream_throughput

export SIGSTAGE_KAFKA_BROKERS=127.0.0.1:19093
export SIGSTAGE_CLICKHOUSE_DATABASE=sigstage_bench
export SIGSTAGE_TOPIC_PREFIX=flame.
export RUST_LOG=warn
private_kafka 19093
target/release/sigstage migrate 2>/dev/null
say "recording one round of $records signals"
perf record -q -F 499 --call-graph dwarf,16384 -o "$work/perf.data" -- \
    target/release/examples/stream_throughput "$records" 1
say "folding and drawing $out"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
mkdir -p "$(dirname "$out")"
inferno-flamegraph --title "make bench-stream, one round of $records signals ($(git rev-parse --short HEAD))" \
    "$work/folded" >"$out"
say "wrote $out"
