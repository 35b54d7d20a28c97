//! Per-org retention on ClickHouse 18.16 (no TTL there: a delete of expired rows): `sigstage
//! retention enforce` deletes one org's signals older than its days, by event time, and nothing
//! of another org's or newer; the sink's round does the same by itself. (On current ClickHouse,
//! the TTL statements are checked by scripts/chdb/check.py.)

use crate::support::pipeline::{metric, start_ready};
use crate::support::{sigstage, stderr, stdout, TestDb};

const DAY_MS: u64 = 86_400_000;

async fn count(db: &TestDb, org: &str, days_ago: u64) -> u64 {
    let query = "SELECT (SELECT count() FROM signals_hot WHERE org_id = ? AND event_date = toDate(now()) - ?) \
                 + (SELECT count() FROM signals_cold WHERE org_id = ? AND event_date = toDate(now()) - ?)";
    db.client.query(query).bind(org).bind(days_ago).bind(org).bind(days_ago).fetch_one().await.expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orgs_expired_signals_are_deleted_and_nothing_else() {
    let db = TestDb::migrated().await;
    let now = runtime::time::now_ms();
    let today = now - now % DAY_MS + DAY_MS / 2;
    let mut id = 0;
    for org in ["acme", "globex"] {
        for days_ago in [100, 10, 1] {
            for table in ["signals_hot", "signals_cold"] {
                id += 1;
                let insert = format!(
                    "INSERT INTO {table} (org_id, lead_email, anonymous_id, signal_id, event_ms) VALUES (?, 'p@x.io', 'v', ?, ?)"
                );
                let at = today - days_ago * DAY_MS;
                db.client.query(&insert).bind(org).bind(id).bind(at).execute().await.expect("row");
            }
        }
    }
    let too_long = sigstage(&["retention", "set", "--org", "acme", "--days", "36500"], &db.vars);
    assert!(!too_long.status.success() && stderr(&too_long).contains("10000"), "{}", stderr(&too_long));
    let set = sigstage(&["retention", "set", "--org", "acme", "--days", "30"], &db.vars);
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(stdout(&sigstage(&["retention", "show"], &db.vars)).contains("acme"));
    let enforced = sigstage(&["retention", "enforce"], &db.vars);
    assert!(enforced.status.success(), "{}", stderr(&enforced));
    assert!(stderr(&enforced).contains("2 expired row(s) deleted"), "{}", stderr(&enforced));
    let held = [(count(&db, "acme", 100).await, count(&db, "acme", 10).await), (count(&db, "globex", 100).await, 0)];
    assert_eq!(held, [(0, 2), (2, 0)], "acme's 100-day-old rows gone, its 10-day-old and globex's kept");

    // The sink's own round, at its start: five days now.
    let set = sigstage(&["retention", "set", "--org", "acme", "--days", "5"], &db.vars);
    assert!(set.status.success(), "{}", stderr(&set));
    let sink = start_ready(&db.vars, &["sink"], &[("SIGSTAGE_RETENTION_INTERVAL_MS", "3600000")])
        .await
        .unwrap_or_else(|(status, logs)| panic!("{status}: {logs}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let metrics = reqwest::get(format!("http://{}/metrics", sink.addr)).await.expect("metrics");
        let metrics = metrics.text().await.expect("text");
        if metric(&metrics, "sigstage_retention_rounds_total", r#"result="done""#) >= Some(1.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no retention round done: {metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let held = [count(&db, "acme", 10).await, count(&db, "acme", 1).await, count(&db, "globex", 10).await];
    assert_eq!(held, [0, 2, 2], "acme's 10-day-old rows gone, the rest kept");
    sink.stop().await;
}
