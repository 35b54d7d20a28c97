#!/usr/bin/env bash
# The bulk import figure: `sigstage import` of SIGNALS Segment-shaped signals (about 1 KB each,
# scripts/bench/segment_export.py) into `make run`'s durable stack (the 9092 broker and database
# sigstage, started if needed) through a `sigstage run` of its own on 127.0.0.1:18100. Reports
# the signals/s accepted and how long after the last 202 every one of them was in ClickHouse.
#
#   scripts/bench/import.sh     (SIGNALS=100000; EMAIL_EVERY=5: one event in five identifies its visitor)
source "$(dirname "$0")/lib.sh"
signals=${SIGNALS:-100000}
addr=127.0.0.1:18100

scripts/stack.sh up
say "building the release binary"
cargo build -q --release --bin sigstage
export RUST_LOG=warn
target/release/sigstage migrate 2>/dev/null
tag=import$(date +%s)
python3 scripts/bench/segment_export.py "$signals" "$tag" >"$work/export.ndjson"
say "$signals signals, $(($(stat -c %s "$work/export.ndjson") / signals)) bytes each on average, tagged $tag"
key=$(target/release/sigstage keys create --org bench-import 2>/dev/null)
SIGSTAGE_HTTP_ADDR=$addr target/release/sigstage run >"$work/run.out" 2>"$work/run.log" &
pids+=($!)
for _ in $(seq 150); do curl -fs "http://$addr/readyz" >/dev/null && break; sleep 0.2; done
curl -fs "http://$addr/readyz" >/dev/null || { say "sigstage run did not become ready:"; tail "$work/run.log"; exit 1; }

started=$(date +%s%N)
target/release/sigstage import --key "$key" --url "http://$addr" "$work/export.ndjson" 2>"$work/import.log"
imported=$(date +%s%N)
count="SELECT uniqExact(signal_id) FROM (SELECT signal_id FROM signals_cold WHERE org_id = 'bench-import' AND event = '$tag'
       UNION ALL SELECT signal_id FROM signals_hot WHERE org_id = 'bench-import' AND event = '$tag')"
stored=0
for _ in $(seq 1200); do
    # A query refused under load (the sink's inserts come first) is asked again.
    stored=$(curl -fsS "http://127.0.0.1:8123/?database=sigstage" --data-binary "$count" 2>"$work/query.err") || stored=0
    [[ $stored == "$signals" ]] && break
    sleep 0.1
done
done_at=$(date +%s%N)
[[ $stored == "$signals" ]] || { say "only $stored of $signals in ClickHouse 120 s after the last 202 $(cat "$work/query.err")"; exit 1; }
awk -v n="$signals" -v a="$started" -v b="$imported" -v c="$done_at" 'BEGIN {
    printf "accepted %d signals in %.2f s: %.0f signals/s; all in ClickHouse %.2f s after the last 202\n",
        n, (b - a) / 1e9, n / ((b - a) / 1e9), (c - b) / 1e9 }'
