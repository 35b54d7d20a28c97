#!/usr/bin/env bash
# No org slows the others: the end-to-end latency (202 to row visible) of a calm org sending
# RATE signals/s, alone, then beside a noisy org sending ten times as many: with the defaults
# (the edge below SIGSTAGE_OVERFLOW_MIN_PER_SECOND, so nobody overflows), with the overflow lane
# forced (a floor of 1/s) and with it off (SIGSTAGE_OVERFLOW_SHARE_PERCENT=100), through
# `sigstage run`, in alternating rounds. Uses its own Kafka broker (port 19095) and the stack's
# ClickHouse.
#
#   scripts/bench/overflow.sh     (RATE=100 DURATION=20 ROUNDS=2)
source "$(dirname "$0")/lib.sh"

scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building release binaries"
cargo build -q --release --bin sigstage --example latency

export SIGSTAGE_KAFKA_BROKERS=127.0.0.1:19095
export SIGSTAGE_CLICKHOUSE_DATABASE=sigstage_bench_overflow
export SIGSTAGE_HTTP_ADDR=127.0.0.1:18091
export RUST_LOG=warn
private_kafka 19095
rate=${RATE:-100}
noisy_rate=$((rate * 10))

round() { # NAME OVERFLOW_SHARE_PERCENT OVERFLOW_MIN_PER_SECOND [noisy]
    export SIGSTAGE_TOPIC_PREFIX=bench-overflow-$$-$RANDOM.
    target/release/sigstage migrate 2>/dev/null
    local calm noisy
    calm=$(target/release/sigstage keys create --org calm 2>/dev/null)
    noisy=$(target/release/sigstage keys create --org noisy 2>/dev/null)
    SIGSTAGE_OVERFLOW_SHARE_PERCENT=$2 SIGSTAGE_OVERFLOW_MIN_PER_SECOND=$3 start_run
    local extra=()
    [[ ${4:-} == noisy ]] && extra=("$noisy" "$noisy_rate")
    printf '%-28s ' "$1:"
    LATENCY_ORG=calm target/release/examples/latency http://127.0.0.1:18091 "$calm" "$rate" "${DURATION:-20}" "${extra[@]}"
    kill "$run"; wait "$run" 2>/dev/null || true
}

for n in $(seq "${ROUNDS:-2}"); do
    say "round $n of ${ROUNDS:-2}: calm org at $rate/s; noisy org at $noisy_rate/s"
    round "alone" 50 5000
    round "beside noisy, defaults" 50 5000 noisy
    round "beside noisy, overflow forced" 50 1 noisy
    round "beside noisy, overflow off" 100 5000 noisy
done
