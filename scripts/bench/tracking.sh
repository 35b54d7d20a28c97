#!/usr/bin/env bash
# The Segment Tracking API beside the bulk endpoint, in one run: events/s of POST /v1/batch
# (after a warm-up round of each; batches of 100 Segment events of about 700 B, as analytics-python sends them: writeKey in
# the body and Basic auth) against POST /bulk/{key} carrying the same 100 events as NDJSON,
# alternating ROUNDS times; medians and their ratio (goal: /v1/batch at least 0.9 of bulk).
# Uses its own Kafka broker (port 19096), and the stack's ClickHouse for keys.
#
#   scripts/bench/tracking.sh        (ROUNDS=5 SECONDS_PER_RUN=10 CONNECTIONS=8 by default)
source "$(dirname "$0")/lib.sh"
rounds=${ROUNDS:-5}
seconds=${SECONDS_PER_RUN:-10}
connections=${CONNECTIONS:-8}

command -v wrk >/dev/null || { say "installing wrk"; apt-get install -y -q wrk >/dev/null; }
scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building the release binary"
cargo build -q --release --bin sigstage

export SIGSTAGE_KAFKA_BROKERS=127.0.0.1:19096
export SIGSTAGE_CLICKHOUSE_DATABASE=sigstage_bench
export SIGSTAGE_TOPIC_PREFIX=bench-tracking-$$.
export SIGSTAGE_HTTP_ADDR=127.0.0.1:18096
export RUST_LOG=warn
private_kafka 19096
target/release/sigstage migrate 2>/dev/null
key=$(target/release/sigstage keys create --org bench-tracking 2>/dev/null)
target/release/sigstage ingest >"$work/edge.out" 2>"$work/edge.log" &
pids+=($!)
for _ in $(seq 150); do curl -fs http://127.0.0.1:18096/readyz >/dev/null && break; sleep 0.2; done
curl -fs http://127.0.0.1:18096/readyz >/dev/null || { say "the edge did not become ready:"; tail "$work/edge.log"; exit 1; }

# 100 Segment events of about 700 B: as a /v1/batch body, and as NDJSON for bulk.
python3 - "$work" "$key" <<'PY'
import json, sys, uuid
work, key = sys.argv[1], sys.argv[2]
context = {"library": {"name": "analytics-python", "version": "2.4.0"}, "ip": "203.0.113.9", "locale": "en-US",
           "campaign": {"name": "spring", "source": "google", "medium": "cpc", "term": "pipeline tool"},
           "page": {"path": "/pricing", "url": "https://acme.io/pricing?utm_source=ads", "title": "Pricing"},
           "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/120.0"}
events = []
for n in range(100):
    kind = ["track", "identify", "page"][n % 3]
    event = {"type": kind, "messageId": str(uuid.uuid4()), "anonymousId": f"anon-{n}", "userId": f"user-{n}",
             "timestamp": "2026-11-24T12:00:00.000+00:00", "context": context, "integrations": {}}
    if kind == "track":
        event.update(event="Form Submitted", properties={"form_name": "demo", "seats": 25, "plan": "growth"})
    elif kind == "identify":
        event.update(traits={"email": f"jane{n}@acme.io", "company": "Acme", "title": "VP Marketing"})
    else:
        event.update(name="Pricing", properties={"path": "/pricing", "referrer": "https://www.google.com/"})
    events.append(event)
sizes = [len(json.dumps(e)) for e in events]
print(f"events of {min(sizes)}-{max(sizes)} B, {sum(sizes) // len(sizes)} B on average", file=sys.stderr)
with open(f"{work}/batch.json", "w") as f:
    json.dump({"batch": events, "sentAt": "2026-11-24T12:00:01.000+00:00", "writeKey": key}, f)
with open(f"{work}/bulk.ndjson", "w") as f:
    f.writelines(json.dumps(e) + "\n" for e in events)
PY
basic="Basic $(printf '%s:' "$key" | base64 -w0)"

wrk_rps() { # url body content-type authorization -> requests/s
    local out non2xx
    out=$(BODY_FILE="$2" CONTENT_TYPE="$3" AUTHORIZATION="$4" wrk -t2 -c"$connections" -d"${seconds}s" -s scripts/bench/tracking.lua "$1")
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    [[ -z $non2xx ]] || { say "  $non2xx non-2xx answers from $1"; exit 1; }
    awk '/Requests\/sec/ {print $2}' <<<"$out"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

say "warming up (a round of each, not counted: the broker's first seconds are slow)"
wrk_rps "http://127.0.0.1:18096/api/signal-staging/bulk/$key" "$work/bulk.ndjson" application/x-ndjson "" >/dev/null
wrk_rps "http://127.0.0.1:18096/v1/batch" "$work/batch.json" application/json "$basic" >/dev/null
say "$rounds rounds of ${seconds}s, $connections requests of 100 events in flight, alternating bulk and /v1/batch"
: >"$work/rounds"
for round in $(seq "$rounds"); do
    bulk=$(wrk_rps "http://127.0.0.1:18096/api/signal-staging/bulk/$key" "$work/bulk.ndjson" application/x-ndjson "")
    batch=$(wrk_rps "http://127.0.0.1:18096/v1/batch" "$work/batch.json" application/json "$basic")
    bulk=$(awk -v r="$bulk" 'BEGIN {printf "%.0f", r * 100}'); batch=$(awk -v r="$batch" 'BEGIN {printf "%.0f", r * 100}')
    say "  round $round: bulk $bulk events/s, /v1/batch $batch events/s"
    echo "$bulk $batch" >>"$work/rounds"
done
bulk=$(awk '{print $1}' "$work/rounds" | median); batch=$(awk '{print $2}' "$work/rounds" | median)
cat <<TABLE
| load (median of $rounds alternating rounds, ${seconds}s each, $connections in flight) | bulk, NDJSON (events/s) | /v1/batch (events/s) | ratio |
|---|---|---|---|
| 100 Segment events of ~700 B per request | $bulk | $batch | $(awk -v a="$batch" -v b="$bulk" 'BEGIN {printf "%.2f", a / b}') (goal ≥ 0.9) |
TABLE
