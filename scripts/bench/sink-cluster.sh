#!/usr/bin/env bash
# The sink's insert rate on a ClickHouse cluster beside one server, in one run: the sink's write
# path (examples/sink_insert) into the stack's ClickHouse, then into a private cluster of four
# 18.16 servers (two shards of two replicas, ZooKeeper; `stack.sh clickhouse-cluster` on base
# port 19300) through its Distributed table, alternating rounds, medians. Both are migrated in
# database sigstage_bench; the cluster is stopped and removed on exit.
#
#   scripts/bench/sink-cluster.sh     (ROWS=100000 ROUNDS=3)
source "$(dirname "$0")/lib.sh"

scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building release binaries"
cargo build -q --release --bin sigstage --example sink_insert

export SIGSTAGE_CLICKHOUSE_DATABASE=sigstage_bench
export RUST_LOG=warn
say "starting a private ClickHouse cluster (ZooKeeper and four servers) under $work/clickhouse-cluster"
trap 'scripts/stack.sh stop "$work/clickhouse-cluster" 2>/dev/null || true; cleanup' EXIT
scripts/stack.sh clickhouse-cluster "$work/clickhouse-cluster" 19300
cluster_url=http://127.0.0.1:19310
target/release/sigstage migrate 2>/dev/null
SIGSTAGE_CLICKHOUSE_URL=$cluster_url SIGSTAGE_CLICKHOUSE_CLUSTER=sigstage target/release/sigstage migrate 2>/dev/null

say "ClickHouse inserts: ${ROUNDS:-3} rounds of ${ROWS:-100000} rows, alternating one server and the cluster"
target/release/examples/sink_insert "${ROWS:-100000}" "${ROUNDS:-3}" "$cluster_url"
