#!/usr/bin/env bash
# The analysts' figures: fills a database of its own (sigstage_analyst_bench, migrated, so the
# rollups' views fill as it goes) with N synthetic signals generated inside ClickHouse
# (scripts/bench/analyst/signals.sql and fill.sql: hot, cold, links and leads over ~200 days
# and 100 orgs, org-0 holding four in ten), parts left as the inserts make them (no OPTIMIZE);
# then times every query of schemas/queries/ for org-0 over the whole range and the last 30 days,
# and each rollup's question over the raw tables beside it (examples/analyst_queries: 3 runs, the
# median); then compacts the per-visitor and per-lead rollups as the sink does every hour
# (sigstage rollups compact) and times the library again.
#
#   scripts/bench/analyst.sh     (N=100000000 SLICE=10000000 RUNS=3 KEEP=1 keeps the database)
source "$(dirname "$0")/lib.sh"

n=${N:-100000000}
slice=${SLICE:-10000000}
visitors=$((n / 10))
export SIGSTAGE_CLICKHOUSE_DATABASE=sigstage_analyst_bench
export RUST_LOG=warn
scripts/stack.sh status >/dev/null 2>&1 || scripts/stack.sh up
say "building release binaries"
cargo build -q --release --bin sigstage --example analyst_queries
ch() { curl -fsS "${SIGSTAGE_CLICKHOUSE_URL:-http://127.0.0.1:8123}/?database=$SIGSTAGE_CLICKHOUSE_DATABASE" --data-binary @-; }

held=$(echo "SELECT count() FROM system.tables WHERE database = '$SIGSTAGE_CLICKHOUSE_DATABASE' AND name = 'signals_cold'" \
    | curl -fsS "${SIGSTAGE_CLICKHOUSE_URL:-http://127.0.0.1:8123}/" --data-binary @-)
if [[ $held == 1 && $(echo "SELECT count() FROM signals_cold" | ch) -gt 0 && -n ${KEEP:-} ]]; then
    say "keeping the $(echo 'SELECT count() FROM signals_cold' | ch) cold rows of $SIGSTAGE_CLICKHOUSE_DATABASE (KEEP is set)"
else
    echo "DROP DATABASE IF EXISTS $SIGSTAGE_CLICKHOUSE_DATABASE" | curl -fsS "${SIGSTAGE_CLICKHOUSE_URL:-http://127.0.0.1:8123}/" --data-binary @-
    target/release/sigstage migrate 2>/dev/null
    say "filling $SIGSTAGE_CLICKHOUSE_DATABASE with $n signals ($visitors visitors), $slice at a time"
    started=$(date +%s)
    for ((first = 0; first < n; first += slice)); do
        count=$((n - first < slice ? n - first : slice))
        echo "DROP TABLE IF EXISTS bench_signals" | ch
        sed -e "s/FIRST/$first/g; s/COUNT/$count/g; s/VISITORS/$visitors/g" scripts/bench/analyst/signals.sql | ch
        # One statement per request: the HTTP interface takes one.
        awk 'BEGIN { RS = ";" } /INSERT/ { print > "'"$work"'/statement-" NR ".sql" }' scripts/bench/analyst/fill.sql
        for statement in "$work"/statement-*.sql; do ch <"$statement"; done
        rm -f "$work"/statement-*.sql
        say "  $((first + count)) of $n signals ($(( $(date +%s) - started )) s)"
    done
    echo "DROP TABLE IF EXISTS bench_signals" | ch
fi
echo "SELECT 'rows: cold', (SELECT count() FROM signals_cold), 'hot', (SELECT count() FROM signals_hot),
      'links', (SELECT count() FROM identities), 'leads', (SELECT count() FROM leads), 'active parts',
      (SELECT count() FROM system.parts WHERE database = currentDatabase() AND active)" | ch
lead=$(echo "SELECT lead_email FROM signals_hot WHERE org_id = 'org-0' LIMIT 1" | ch)
say "timing every library query for org-0, as the merges left the parts (lead $lead)"
target/release/examples/analyst_queries org-0 2026-01-01 2026-12-31 "$lead" "${RUNS:-3}"
say "compacting the per-visitor and per-lead rollups, as the sink does every SIGSTAGE_ROLLUPS_COMPACT_INTERVAL_MS"
target/release/sigstage rollups compact
echo "SELECT 'rollup rows: visitors', (SELECT count() FROM visitors), 'lead_summaries', (SELECT count() FROM lead_summaries)" | ch
say "timing every library query for org-0 again, after the compaction"
RAW=0 target/release/examples/analyst_queries org-0 2026-01-01 2026-12-31 "$lead" "${RUNS:-3}"
