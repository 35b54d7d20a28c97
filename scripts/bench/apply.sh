#!/usr/bin/env bash
# A rule applied to history beside live traffic: `sigstage run` (every role, one process) on a
# broker and a database of its own; SIGNALS stored signals imported before a rule existed (a fifth
# of them forms whose email the rule maps), then 200 timed live signals/s for DURATION s with no
# apply running, then the same while `sigstage rules apply` works through the stored signals at
# RATE a second; prints the live 202-to-row p50/p99 of each, and how far the apply got.
#
#   scripts/bench/apply.sh       (SIGNALS=1000000 RATE=5000 DURATION=30 by default)
source "$(dirname "$0")/lib.sh"
scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building release binaries"
cargo build -q --release --bin sigstage --example latency

own_database sigstage_bench_apply
export SIGSTAGE_KAFKA_BROKERS=127.0.0.1:19094
export SIGSTAGE_HTTP_ADDR=127.0.0.1:18090 SIGSTAGE_TOPIC_PREFIX=bench-apply-$$. RUST_LOG=warn
private_kafka 19094
target/release/sigstage migrate 2>/dev/null
signals=${SIGNALS:-1000000} duration=${DURATION:-30}
count() { curl -fs --data-binary "$1" "${SIGSTAGE_CLICKHOUSE_URL:-http://127.0.0.1:8123}/?database=$database"; }

history=$(target/release/sigstage keys create --org history 2>/dev/null)
# An org for each round: the same timed signals sent again to one org would be duplicates.
live=$(target/release/sigstage keys create --org latency 2>/dev/null)
live2=$(target/release/sigstage keys create --org latency2 2>/dev/null)
start_run
say "writing $signals stored signals: each visitor three pages, a click, then a form"
awk -v n="$((signals / 5))" 'BEGIN {
    for (v = 0; v < n; v++) {
        for (p = 0; p < 3; p++) printf "{\"type\":\"page\",\"name\":\"P%d\",\"anonymousId\":\"h%d\",\"messageId\":\"h%d-%d\"}\n", p, v, v, p
        printf "{\"type\":\"track\",\"event\":\"Clicked\",\"anonymousId\":\"h%d\",\"messageId\":\"h%d-3\"}\n", v, v
        printf "{\"type\":\"track\",\"event\":\"Form Submitted\",\"anonymousId\":\"h%d\",\"messageId\":\"h%d-4\",\"properties\":{\"work_email\":\"lead%d@example.com\"}}\n", v, v, v
    }
}' >"$work/history.ndjson"
say "importing them (before the rule exists)"
target/release/sigstage import --url "http://$SIGSTAGE_HTTP_ADDR" --key "$history" "$work/history.ndjson" 2>&1 | tail -1
until [ "$(count "SELECT count() FROM signals_cold WHERE org_id = 'history'")" -ge "$signals" ]; do
    say "stored: $(count "SELECT count() FROM signals_cold WHERE org_id = 'history'") of $signals"
    sleep 5
done
rule=$(target/release/sigstage rules add --org history \
    '{"name":"Forms","source":"segment","event":"Form Submitted","map":{"email":"properties.work_email"}}' 2>/dev/null |
    sed 's/.*"id":"\([^"]*\)".*/\1/')

say "200 timed live signals/s for $duration s, no apply running"
target/release/examples/latency "http://$SIGSTAGE_HTTP_ADDR" "$live" 200 "$duration"
say "the same while rule $rule is applied to the $signals stored signals at ${RATE:-5000}/s"
target/release/sigstage rules apply "$rule" --org history --since 2000-01-01 --rate "${RATE:-5000}" >"$work/apply.out" 2>"$work/apply.log" &
applying=$!
pids+=("$applying")
until target/release/sigstage rules jobs --org history 2>/dev/null | grep -q '"read":[1-9]'; do sleep 0.5; done
LATENCY_ORG=latency2 target/release/examples/latency "http://$SIGSTAGE_HTTP_ADDR" "$live2" 200 "$duration" ||
    { say "sigstage run's log:"; grep -v '^ ' "$work/run.log" | tail -20; say "the apply's:"; tail -5 "$work/apply.log"; }
job=$(target/release/sigstage rules jobs --org history 2>/dev/null | head -1)
say "the apply meanwhile: $job"
target/release/sigstage rules cancel "$(echo "$job" | sed 's/.*"job_id":"\([^"]*\)".*/\1/')" --org history 2>&1 | tail -1
wait "$applying" 2>/dev/null || true
say "attributed by the apply so far: $(count "SELECT count() FROM signals_hot WHERE org_id = 'history'") hot rows"
