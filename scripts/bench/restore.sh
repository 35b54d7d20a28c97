#!/usr/bin/env bash
# Restore time against state size: a processor given every partition reads back ENTRIES/10 and
# ENTRIES dedupe entries plus as many links, ROUNDS times each; medians. Uses its own Kafka
# broker (port 19094), nothing else.
#
#   scripts/bench/restore.sh            (ENTRIES=1000000 ROUNDS=3 by default)
source "$(dirname "$0")/lib.sh"
entries=${ENTRIES:-1000000}
rounds=${ROUNDS:-3}

say "building the release bench"
cargo build -q --release --example restore_time

export SIGSTAGE_KAFKA_BROKERS=127.0.0.1:19094
export SIGSTAGE_TOPIC_PREFIX=bench.
export RUST_LOG=warn
private_kafka 19094
say "restoring $((entries / 10)) and $entries entries of each kind, $rounds times each"
target/release/examples/restore_time "$entries" "$rounds"
