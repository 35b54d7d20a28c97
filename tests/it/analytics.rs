//! The analysts' query library (`schemas/queries/`) on signals that went through the whole
//! pipeline (edge, stream, sink): a known set of signals, and each question's exact answer, read
//! from the rollups the views fill and from the signal tables.

use crate::support::edge::TestEdge;
use crate::support::pipeline::{await_count, caught_up, library_query, start_processor, start_sink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_library_query_answers_exactly_on_one_server() {
    let edge = TestEdge::start().await;
    library_answers_exactly(&edge).await;
}

/// The day a ClickHouse `Date` (days since 1970-01-01) is, as YYYY-MM-DD.
fn day(days: u16) -> String {
    let date = time::Date::from_julian_day(time::macros::date!(1970 - 01 - 01).to_julian_day() + i32::from(days));
    date.expect("a date").to_string()
}

fn ms(rfc3339: &str) -> u64 {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).expect(rfc3339);
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("after 1970")
}

/// Posts the signals below for org `acme` (and one for org `other`, which no answer for acme
/// may count), waits until the sink has written them, then asks every question of the library.
///
/// - Visitor v1: Pricing Page Viewed (03-01 10:00), Demo Requested (03-02 10:00), identified as
///   jo@acme.io (03-03 10:00), Page Viewed (03-04 10:00).
/// - Visitor v2: Pricing Page Viewed (03-01 12:00), Demo Requested nine days later; anonymous.
/// - sam@acme.io: a HubSpot Form Submitted (03-02 09:00), no visitor.
pub async fn library_answers_exactly(edge: &TestEdge) {
    let (acme, other) = (edge.key("acme", &[]).await, edge.key("other", &[]).await);
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    let segment = |key: &str| format!("/api/signal-staging/webhook/{key}");
    let track = |id: &str, visitor: &str, event: &str, at: &str| {
        format!(
            r#"{{"type":"track","event":"{event}","anonymousId":"{visitor}","messageId":"{id}","timestamp":"{at}"}}"#
        )
    };
    let client = &edge.db.client;
    for body in [
        track("t1", "v1", "Pricing Page Viewed", "2026-03-01T10:00:00Z"),
        track("t2", "v1", "Demo Requested", "2026-03-02T10:00:00Z"),
        track("t4", "v2", "Pricing Page Viewed", "2026-03-01T12:00:00Z"),
        track("t5", "v2", "Demo Requested", "2026-03-10T12:00:00Z"),
    ] {
        assert_eq!(edge.post_json(&segment(&acme), &body).await.status, 202);
    }
    let noise = track("o1", "v1", "Pricing Page Viewed", "2026-03-01T10:00:00Z");
    assert_eq!(edge.post_json(&segment(&other), &noise).await.status, 202);
    await_count(client, "SELECT count() FROM signals_cold WHERE org_id = 'acme' AND anonymous_id = 'v1'", 2).await;
    let identify = r#"{"type":"identify","anonymousId":"v1","messageId":"i1","timestamp":"2026-03-03T10:00:00Z","traits":{"email":"jo@acme.io"}}"#;
    assert_eq!(edge.post_json(&segment(&acme), identify).await.status, 202);
    assert_eq!(
        edge.post_json(&segment(&acme), &track("t3", "v1", "Page Viewed", "2026-03-04T10:00:00Z")).await.status,
        202
    );
    let hubspot = r#"{"email":"sam@acme.io","event":"Form Submitted","timestamp":"2026-03-02T09:00:00Z"}"#;
    assert_eq!(edge.post_json(&format!("/api/signal-staging/webhook/hubspot/{acme}"), hubspot).await.status, 202);
    // Physically: 5 cold rows (4 of acme, 1 of other); 5 hot (jo: 2 rehydrated, the identify,
    // one track; sam: 1).
    await_count(client, "SELECT count() FROM signals_hot", 5).await;
    await_count(client, "SELECT count() FROM signals_cold", 5).await;
    caught_up(&edge.db.config).await;
    sink.stop().await;
    processor.stop().await;

    let ask = |name: &str, params: &[(&str, &str)]| library_query(name, "acme", params);

    let by_day: Vec<(u16, String, u64, u64)> =
        client.query(&ask("signals_by_source_and_day", &[])).fetch_all().await.expect("by day");
    let by_day: Vec<(String, &str, u64, u64)> = by_day.iter().map(|r| (day(r.0), r.1.as_str(), r.2, r.3)).collect();
    let expected = [
        ("2026-03-01", "segment", 2, 2),
        ("2026-03-02", "hubspot", 1, 0),
        ("2026-03-02", "segment", 1, 1),
        ("2026-03-03", "segment", 1, 0),
        ("2026-03-04", "segment", 1, 0),
        ("2026-03-10", "segment", 1, 1),
    ]
    .map(|(d, s, n, a)| (d.to_owned(), s, n, a));
    assert_eq!(by_day, expected);
    let march_2: Vec<(u16, String, u64, u64)> = client
        .query(
            &library_query("signals_by_source_and_day", "acme", &[])
                .replace("2000-01-01", "2026-03-02")
                .replace("2100-12-31", "2026-03-02"),
        )
        .fetch_all()
        .await
        .expect("one day");
    assert_eq!(march_2.len(), 2, "the range bounds the days: {march_2:?}");
    let theirs: Vec<(u16, String, u64, u64)> =
        client.query(&library_query("signals_by_source_and_day", "other", &[])).fetch_all().await.expect("other org");
    assert_eq!(theirs.iter().map(|r| r.2).sum::<u64>(), 1, "{theirs:?}");

    let top: Vec<(String, String, u64)> = client.query(&ask("top_events", &[])).fetch_all().await.expect("top");
    let expected = [
        ("Demo Requested", "track", 2),
        ("Pricing Page Viewed", "track", 2),
        ("Form Submitted", "signal", 1),
        ("Page Viewed", "track", 1),
        ("identify", "identify", 1),
    ]
    .map(|(e, k, n)| (e.to_owned(), k.to_owned(), n));
    assert_eq!(top, expected);

    let active: Vec<(u16, u64, u64)> = client.query(&ask("daily_active", &[])).fetch_all().await.expect("active");
    let active: Vec<(String, u64, u64)> = active.iter().map(|r| (day(r.0), r.1, r.2)).collect();
    let expected =
        [("2026-03-01", 2, 1), ("2026-03-02", 1, 2), ("2026-03-03", 1, 1), ("2026-03-04", 1, 1), ("2026-03-10", 1, 0)]
            .map(|(d, v, l)| (d.to_owned(), v, l));
    assert_eq!(active, expected, "(day, visitors, leads): jo is active on the days of her anonymous past");

    let timeline: Vec<(u64, u64, String, String, String, String, String)> =
        client.query(&ask("lead_timeline", &[("lead", "jo@acme.io")])).fetch_all().await.expect("timeline");
    let timeline: Vec<(&str, &str)> = timeline.iter().map(|r| (r.4.as_str(), r.5.as_str())).collect();
    assert_eq!(
        timeline,
        [
            ("Pricing Page Viewed", "rehydrated"),
            ("Demo Requested", "rehydrated"),
            ("identify", "signal"),
            ("Page Viewed", "identity")
        ]
    );

    let touches: Vec<crate::support::pipeline::TouchRow> =
        client.query(&ask("first_and_last_touch", &[])).fetch_all().await.expect("touches");
    let expected = [
        (
            "jo@acme.io",
            "segment",
            "Pricing Page Viewed",
            ms("2026-03-01T10:00:00Z"),
            "segment",
            "Page Viewed",
            ms("2026-03-04T10:00:00Z"),
            4,
            2,
        ),
        (
            "sam@acme.io",
            "hubspot",
            "Form Submitted",
            ms("2026-03-02T09:00:00Z"),
            "hubspot",
            "Form Submitted",
            ms("2026-03-02T09:00:00Z"),
            1,
            0,
        ),
    ]
    .map(|(l, fs, fe, f, ls, le, la, n, a)| (l.into(), fs.into(), fe.into(), f, ls.into(), le.into(), la, n, a));
    assert_eq!(touches, expected);

    let by_source: Vec<(String, u64, u64)> =
        client.query(&ask("leads_by_first_touch", &[])).fetch_all().await.expect("by source");
    assert_eq!(by_source, [("hubspot".to_owned(), 1, 0), ("segment".to_owned(), 1, 1)]);

    let identification: (u64, u64, u64, u64) =
        client.query(&ask("time_to_identification", &[])).fetch_one().await.expect("time to identification");
    assert_eq!(identification, (1, 0, 2 * 86_400_000, 2 * 86_400_000), "v1: two days anonymous");

    let per_day: Vec<(u16, u64, u64)> =
        client.query(&ask("identification_by_day", &[])).fetch_all().await.expect("identification by day");
    let per_day: Vec<(String, u64, u64)> = per_day.iter().map(|r| (day(r.0), r.1, r.2)).collect();
    assert_eq!(per_day, [("2026-03-01".to_owned(), 2, 0), ("2026-03-03".to_owned(), 0, 1)]);

    let funnel = ask("funnel", &[("first", "Pricing Page Viewed"), ("then", "Demo Requested"), ("days", "7")]);
    let funnel: (u64, u64) = client.query(&funnel).fetch_one().await.expect("funnel");
    assert_eq!(funnel, (2, 1), "v1 asked for a demo a day after pricing; v2 nine days after");
    let wider = ask("funnel", &[("first", "Pricing Page Viewed"), ("then", "Demo Requested"), ("days", "10")]);
    assert_eq!(client.query(&wider).fetch_one::<(u64, u64)>().await.expect("funnel"), (2, 2));

    // The invariant holds, and finds a cold signal of an identified visitor left unattributed.
    let unlinked = ask("unlinked_cold_signals", &[]);
    assert_eq!(client.query(&unlinked).fetch_one::<u64>().await.expect("invariant"), 0);
    client
        .query("INSERT INTO signals_cold (org_id, anonymous_id, signal_id, event_ms) VALUES ('acme', 'v1', 999, ?)")
        .bind(ms("2026-03-05T00:00:00Z"))
        .execute()
        .await
        .expect("an unattributed cold row");
    await_count(client, &unlinked, 1).await;
}

/// The TSV answer of every question a rollup answers, for org acme over every day.
pub async fn rollup_answers(client: &clickhouse::Client) -> Vec<String> {
    let mut answers = Vec::new();
    for name in [
        "signals_by_source_and_day",
        "top_events",
        "daily_active",
        "first_and_last_touch",
        "leads_by_first_touch",
        "time_to_identification",
        "identification_by_day",
    ] {
        let query = client.query_raw(&library_query(name, "acme", &[]));
        let answer = runtime::clickhouse::answer_bytes(query, "TSV").await.expect(name);
        answers.push(format!("{name}:\n{}", String::from_utf8_lossy(&answer)));
    }
    answers
}

/// A database that held signals before its rollups existed (or whose rollups were emptied):
/// `sigstage rollups rebuild` fills them from the signal tables, and each answer is the one the
/// views gave as the rows were written. Run twice, it counts nothing twice.
#[tokio::test]
async fn rollups_rebuilt_from_the_signal_tables_answer_as_the_views_did() {
    let db = crate::support::TestDb::migrated().await;
    let columns = "org_id, lead_email, signal_id, anonymous_id, source, kind, event, attributed_by, event_ms";
    for (table, rows) in [
        ("signals_cold", "('acme', '', 1, 'v1', 'segment', 'track', 'Pricing Page Viewed', '', 1772359200000), \
                          ('acme', '', 2, 'v2', 'pixel', 'page', 'page_view', '', 1772445600000)"),
        ("signals_hot", "('acme', 'jo@acme.io', 1, 'v1', 'segment', 'track', 'Pricing Page Viewed', 'rehydrated', 1772359200000), \
                         ('acme', 'jo@acme.io', 3, 'v1', 'segment', 'identify', 'identify', 'signal', 1772532000000), \
                         ('acme', 'sam@acme.io', 4, '', 'hubspot', 'signal', 'Form Submitted', 'signal', 1772445600000)"),
    ] {
        let insert = format!("INSERT INTO {table} ({columns}) VALUES {rows}");
        db.client.query(&insert).execute().await.expect(table);
    }
    let by_views = rollup_answers(&db.client).await;
    assert!(by_views[0].contains("segment\t1\t1"), "{by_views:?}");
    for rollup in schemas::migrations::ROLLUPS {
        db.client.query(&format!("TRUNCATE TABLE {rollup}")).execute().await.expect(rollup);
    }
    assert_ne!(rollup_answers(&db.client).await, by_views, "emptied rollups answer nothing");
    for run in 1..=2 {
        let rebuilt = crate::support::sigstage(&["rollups", "rebuild"], &db.vars);
        let said = crate::support::stderr(&rebuilt);
        assert!(rebuilt.status.success() && said.contains("rollups: rebuilt"), "run {run}: {said}");
        assert_eq!(rollup_answers(&db.client).await, by_views, "run {run}");
    }
}

/// `sigstage rollups compact` (what the sink does every SIGSTAGE_ROLLUPS_COMPACT_INTERVAL_MS)
/// folds the per-visitor and per-lead rollups to one row a key, counted physically, and changes
/// no answer.
#[tokio::test]
async fn compacted_rollups_hold_a_row_a_key_and_answer_the_same() {
    let db = crate::support::TestDb::migrated().await;
    let columns = "org_id, lead_email, signal_id, anonymous_id, source, kind, event, attributed_by, event_ms";
    // One insert a row: each is a part of its own, so each key has a row in several parts, kept
    // apart (no background merge) until they are counted.
    let merges = |what: &'static str| {
        let client = db.client.clone();
        async move {
            for rollup in schemas::migrations::ENTITY_ROLLUPS {
                client.query(&format!("SYSTEM {what} MERGES {rollup}")).execute().await.expect(what);
            }
        }
    };
    merges("STOP").await;
    for (table, row) in [
        ("signals_cold", "('acme', '', 1, 'v1', 'segment', 'track', 'Pricing Page Viewed', '', 1772359200000)"),
        ("signals_cold", "('acme', '', 2, 'v2', 'pixel', 'page', 'page_view', '', 1772445600000)"),
        ("signals_cold", "('acme', '', 5, 'v2', 'pixel', 'page', 'page_view', '', 1772532000000)"),
        (
            "signals_hot",
            "('acme', 'jo@acme.io', 1, 'v1', 'segment', 'track', 'Pricing Page Viewed', 'rehydrated', 1772359200000)",
        ),
        ("signals_hot", "('acme', 'jo@acme.io', 3, 'v1', 'segment', 'identify', 'identify', 'signal', 1772532000000)"),
        (
            "signals_hot",
            "('acme', 'jo@acme.io', 6, 'v1', 'segment', 'track', 'Page Viewed', 'identity', 1772618400000)",
        ),
    ] {
        let insert = format!("INSERT INTO {table} ({columns}) VALUES {row}");
        db.client.query(&insert).execute().await.expect(table);
    }
    let rows = |table: &'static str| {
        let client = db.client.clone();
        async move { client.query(&format!("SELECT count() FROM {table}")).fetch_one::<u64>().await.expect(table) }
    };
    let (visitors, leads) = (rows("visitors").await, rows("lead_summaries").await);
    assert!(visitors >= 5 && leads >= 3, "a row an insert: {visitors} visitors rows, {leads} lead rows");
    let before = rollup_answers(&db.client).await;
    merges("START").await;
    for run in 1..=2 {
        let compacted = crate::support::sigstage(&["rollups", "compact"], &db.vars);
        let said = crate::support::stderr(&compacted);
        assert!(compacted.status.success(), "run {run}: {said}");
        assert!(said.contains("visitors merged to one part") && said.contains("lead_summaries merged"), "{said}");
        assert_eq!((rows("visitors").await, rows("lead_summaries").await), (2, 1), "run {run}: a row a key");
        assert_eq!(rollup_answers(&db.client).await, before, "run {run}");
    }
}
