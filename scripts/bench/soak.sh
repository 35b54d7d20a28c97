#!/usr/bin/env bash
# The edge under a slow-client attack, beside the same load without it, in one run
# (examples/soak.rs): rounds alternate calm and attacked, each sending single signals at RATE a
# second; an attacked round also holds STALLED half-sent heads and SLOW trickled bodies. Reports
# the p50/p99 of each kind (medians of the rounds), their ratio, the edge's memory through the
# run, and checks every 202 is a record in signals.raw. The edge runs with its defaults.
# Uses its own Kafka broker (port 19093), and the stack's ClickHouse for keys.
#
#   scripts/bench/soak.sh      (RATE=500 ROUND_SECONDS=60 ROUNDS=5: ten minutes; STALLED=2000 SLOW=100)
source "$(dirname "$0")/lib.sh"
rate=${RATE:-500}
round_seconds=${ROUND_SECONDS:-60}
rounds=${ROUNDS:-5}

scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building release binaries"
cargo build -q --release --bin sigstage --example soak

start_edge 18090 19093 sigstage_bench_soak soak. soak
for _ in $(seq 100); do
    curl -fs http://127.0.0.1:18090/readyz >/dev/null && break
    sleep 0.2
done
curl -fs http://127.0.0.1:18090/readyz >/dev/null || { say "the edge did not become ready:"; tail "$work/edge.log"; exit 1; }

say "$((rounds * 2)) rounds of ${round_seconds}s at $rate signals/s, alternating calm and attacked"
target/release/examples/soak http://127.0.0.1:18090 "$key" "$rate" "$round_seconds" "$rounds" "$edge"
curl -fs http://127.0.0.1:18090/metrics | grep -E '^sigstage_http_(connections_(refused|timed_out)|bodies_too_slow)' || true
