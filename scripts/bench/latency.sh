#!/usr/bin/env bash
# 202 to row under load: `sigstage run` (every role, one process) on a broker and a database of
# its own, 200 timed signals/s for DURATION s while another org sends LOAD Segment events/s as
# /v1/batch requests of 100 (the live lane), for each LOAD in LOADS, after a warm-up round that
# is not counted; prints p50/p99/max and whether the stream kept up.
#
#   scripts/bench/latency.sh            (LOADS="0 5000 10000 20000" DURATION=15 by default)
source "$(dirname "$0")/lib.sh"
scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building release binaries"
cargo build -q --release --bin sigstage --example latency

own_database sigstage_bench_latency
export SIGSTAGE_KAFKA_BROKERS=127.0.0.1:19094
export SIGSTAGE_HTTP_ADDR=127.0.0.1:18090 RUST_LOG=warn
private_kafka 19094
target/release/sigstage migrate 2>/dev/null
duration=${DURATION:-15}

round() { # LOAD SECONDS
    export SIGSTAGE_TOPIC_PREFIX=bench-latency-$1-$RANDOM.
    local key noisy load=()
    key=$(target/release/sigstage keys create --org latency 2>/dev/null)
    noisy=$(target/release/sigstage keys create --org load 2>/dev/null)
    [ "$1" -gt 0 ] && load=("$noisy" "$1" 100)
    start_run
    target/release/examples/latency http://127.0.0.1:18090 "$key" 200 "$2" "${load[@]}"
    processed=$(curl -fs "http://$SIGSTAGE_HTTP_ADDR/metrics" | awk '/^sigstage_stream_records_total\{outcome="processed"\}/ {print $2}') ||
        { say "sigstage run no longer answers:"; tail "$work/run.log"; exit 1; }
    say "the stream had processed $processed of $(((200 + $1) * $2)) signals when the last timed one was visible"
    kill "$run"; wait "$run" 2>/dev/null || true
}

say "warming up (5 s, not counted: the broker's first seconds are slow)"
round 0 5 >/dev/null
for load in ${LOADS:-0 5000 10000 20000}; do
    say "200 timed signals/s for $duration s beside $load events/s of load"
    round "$load" "$duration"
done
