#!/usr/bin/env bash
# Load figures for the ingest edge, each side by side with its baseline in the same run:
#   single: requests/s of POST /webhook/{key} vs a do-nothing server answering 202 (what
#           durability costs) and vs a minimal server that produces each body to Kafka with the
#           edge's producer settings and awaits the ack before its 202 (the honest ceiling), same
#           wrk, same connections, alternating ROUNDS times; medians, ratios, p99.
#   bulk:   signals/s of POST /bulk/{key} (1000-signal NDJSON bodies) vs a bare rdkafka
#           producer writing the same records to the same broker, and vs the same minimal
#           server producing each line, alternating; medians, ratios.
# Uses its own Kafka broker (port 19092), and the stack's ClickHouse for keys. Needs `make stack-up`.
#
#   scripts/bench/load.sh            (ROUNDS=3 SECONDS=10 CONNECTIONS=64 by default)
source "$(dirname "$0")/lib.sh"
rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_RUN:-10}
connections=${CONNECTIONS:-64}

command -v wrk >/dev/null || { say "installing wrk"; apt-get install -y -q wrk >/dev/null; }
scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building release binaries"
cargo build -q --release --bin sigstage --example noop_server --example bare_producer --example kafka_server

start_edge 18080 19092 sigstage_bench bench. bench
target/release/examples/noop_server 127.0.0.1:18081 2>/dev/null &
pids+=($!)
target/release/examples/kafka_server 127.0.0.1:18082 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do
    curl -fs http://127.0.0.1:18080/readyz >/dev/null && curl -s -o /dev/null http://127.0.0.1:18081/ \
        && curl -s -o /dev/null http://127.0.0.1:18082/ && break
    sleep 0.2
done
curl -fs http://127.0.0.1:18080/readyz >/dev/null || { say "the edge did not become ready:"; tail "$work/edge.log"; exit 1; }

# 1000 signals, the mix the criterion bench uses, as NDJSON.
python3 - "$work/bulk.ndjson" <<'PY'
import json, sys
ctx = {"ip": "203.0.113.9", "library": {"name": "analytics.js", "version": "4.1.0"},
       "page": {"path": "/pricing", "url": "https://acme.io/pricing?utm_source=ads", "title": "Pricing"},
       "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/120.0"}
with open(sys.argv[1], "w") as f:
    for n in range(1000):
        kind = n % 4
        if kind == 0:
            s = {"type": "track", "event": "Form Submitted", "anonymousId": f"a-{n}", "messageId": f"m-{n}",
                 "properties": {"form_name": "demo", "seats": 25}, "context": ctx}
        elif kind == 1:
            s = {"type": "identify", "anonymousId": f"a-{n}", "messageId": f"i-{n}",
                 "traits": {"email": f"jane{n}@acme.io", "company": "Acme"}, "context": ctx}
        elif kind == 2:
            s = {"email": f"lead{n}@example.com", "event": "page_view", "properties": {"page": "/pricing"}}
        else:
            s = {"title": "Call", "startTime": "2024-08-03T11:30:00Z", "externalId": f"c-{n}"}
        f.write(json.dumps(s) + "\n")
PY

wrk_run() { # url script -> "rps p99_ms"
    local out
    out=$(BULK_FILE="$work/bulk.ndjson" wrk -t2 -c"$2" -d"${seconds}s" --latency -s "$3" "$1")
    local rps p99
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$out")
    local non2xx
    non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
    [[ -z $non2xx ]] || say "  ($non2xx non-2xx answers)"
    echo "$rps $p99"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

say "single signals: $rounds rounds of ${seconds}s, $connections connections, alternating baseline and edge"
: >"$work/single"
for round in $(seq "$rounds"); do
    read -r base_rps base_p99 < <(wrk_run http://127.0.0.1:18081/ "$connections" scripts/bench/post.lua)
    read -r kafka_rps kafka_p99 < <(wrk_run http://127.0.0.1:18082/webhook "$connections" scripts/bench/post.lua)
    read -r edge_rps edge_p99 < <(wrk_run "http://127.0.0.1:18080/api/signal-staging/webhook/$key" "$connections" scripts/bench/post.lua)
    say "  round $round: noop $base_rps req/s (p99 ${base_p99} ms), produce-and-ack $kafka_rps req/s (p99 ${kafka_p99} ms), edge $edge_rps req/s (p99 ${edge_p99} ms)"
    echo "$base_rps $base_p99 $edge_rps $edge_p99 $kafka_rps $kafka_p99" >>"$work/single"
done

bulk_connections=${BULK_CONNECTIONS:-4}
say "bulk: $rounds rounds of ${seconds}s, $bulk_connections requests of 1000 signals in flight, alternating bare producer and edge"
: >"$work/bulk"
for round in $(seq "$rounds"); do
    bare=$(target/release/examples/bare_producer 127.0.0.1:19092 bench.signals.raw.historical "$work/bulk.ndjson" "$seconds" "$bulk_connections" | awk '{print $(NF-1)}')
    read -r kafka_bulk_rps _ < <(wrk_run http://127.0.0.1:18082/bulk/ "$bulk_connections" scripts/bench/bulk.lua)
    read -r bulk_rps bulk_p99 < <(wrk_run "http://127.0.0.1:18080/api/signal-staging/bulk/$key" "$bulk_connections" scripts/bench/bulk.lua)
    edge_signals=$(awk -v r="$bulk_rps" 'BEGIN {printf "%.0f", r * 1000}')
    kafka_signals=$(awk -v r="$kafka_bulk_rps" 'BEGIN {printf "%.0f", r * 1000}')
    say "  round $round: bare producer $bare records/s, produce-and-ack server $kafka_signals signals/s, edge $edge_signals signals/s (p99 ${bulk_p99} ms per request)"
    echo "$bare $edge_signals $bulk_p99 $kafka_signals" >>"$work/bulk"
done

base=$(awk '{print $1}' "$work/single" | median); edge=$(awk '{print $3}' "$work/single" | median)
base_p99=$(awk '{print $2}' "$work/single" | median); edge_p99=$(awk '{print $4}' "$work/single" | median)
bare=$(awk '{print $1}' "$work/bulk" | median); bulk=$(awk '{print $2}' "$work/bulk" | median)
bulk_p99=$(awk '{print $3}' "$work/bulk" | median)
kafka=$(awk '{print $5}' "$work/single" | median); kafka_p99=$(awk '{print $6}' "$work/single" | median)
kafka_bulk=$(awk '{print $4}' "$work/bulk" | median)
cat <<TABLE
| load (median of $rounds alternating rounds, ${seconds}s each) | baseline | sigstage edge | ratio |
|---|---|---|---|
| single signal, $connections keep-alive connections (req/s) | $kafka (produce-and-ack server, p99 $kafka_p99 ms) | $edge (p99 $edge_p99 ms) | $(awk -v a="$edge" -v b="$kafka" 'BEGIN {printf "%.2f", a / b}') |
| the same, beside a server that never touches Kafka | $base (noop 202 server, p99 $base_p99 ms) | $edge | $(awk -v a="$edge" -v b="$base" 'BEGIN {printf "%.2f", a / b}') |
| bulk, 1000-signal NDJSON, $bulk_connections in flight (signals/s) | $kafka_bulk (produce-and-ack server, each line) | $bulk (p99 $bulk_p99 ms per request) | $(awk -v a="$bulk" -v b="$kafka_bulk" 'BEGIN {printf "%.2f", a / b}') |
| the same, beside a bare rdkafka producer (no HTTP) | $bare | $bulk | $(awk -v a="$bulk" -v b="$bare" 'BEGIN {printf "%.2f", a / b}') |
TABLE
