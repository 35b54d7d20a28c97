//! The console in a real browser: Debian's Chromium, driven by playwright-core (both installed
//! by `scripts/browser.sh`), walks a person's path against `sigstage run` on loopback (see
//! tests/browser/console.cjs). Screenshots of each page land in target/console-screenshots.
//! What the browser did is then checked where it is stored.

use std::path::PathBuf;

use control::keys::{self, NewKey};
use control::{rules, webhooks};

use crate::support::pipeline::start_ready;
use crate::support::{unique, TestDb};

const TOKEN: &str = "console-admin-token-for-tests";
const SCOPED: &str = "console-org-token-for-tests";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_maps_a_signal_subscribes_and_revokes_in_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let playwright = root.join(".state/browser/node/node_modules/playwright-core");
    assert!(
        playwright.is_dir() && PathBuf::from("/usr/bin/chromium").exists(),
        "run scripts/browser.sh (make test does)"
    );
    let shots = root.join("target/console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("screenshot directory");

    let db = TestDb::migrated().await;
    let (org, other_org) = (unique("console"), unique("other"));
    let other =
        keys::create(&db.client, NewKey { org_id: &other_org, ..NewKey::default() }).await.expect("other org's key");
    let scoped = format!("{org}-ops:full@{org}:{SCOPED}");
    let extra = [
        ("SIGSTAGE_ADMIN_ADDR", "127.0.0.1:0"),
        ("SIGSTAGE_ADMIN_TOKEN", TOKEN),
        ("SIGSTAGE_ADMIN_TOKENS", scoped.as_str()),
        ("SIGSTAGE_CONTROL_REFRESH_MS", "300"),
        ("SIGSTAGE_WEBHOOKS_ALLOW_PRIVATE", "true"),
    ];
    let run = start_ready(&db.vars, &["run"], &extra).await.unwrap_or_else(|(status, logs)| panic!("{status}: {logs}"));
    let admin = run.admin.clone().expect("the admin listener's line");

    let walked = tokio::process::Command::new("node")
        .arg(root.join("tests/browser/console.cjs"))
        .env("PLAYWRIGHT", &playwright)
        .env("CONSOLE", format!("http://{admin}"))
        .env("TOKEN", TOKEN)
        .env("SCOPED_TOKEN", SCOPED)
        .env("ORG", &org)
        .env("OTHER_ORG", &other_org)
        .env("OTHER_KEY_ID", &other.key_id)
        .env("SHOTS", &shots)
        .kill_on_drop(true)
        .output();
    let walked = tokio::time::timeout(std::time::Duration::from_secs(300), walked)
        .await
        .expect("the browser's path ends within 5 minutes")
        .expect("node runs");
    let said = String::from_utf8_lossy(&walked.stderr).into_owned();
    if !walked.status.success() {
        let logs = run.stop().await;
        panic!("the browser's path failed:\n{said}\n--- sigstage logs (tail) ---\n{}", tail(&logs, 60));
    }
    eprintln!("{said}");

    // What the person did, as stored.
    let saved = rules::list(&db.client, Some(&org)).await.expect("rules");
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(
        (saved[0].spec.event.as_deref(), saved[0].spec.map.get("email").map(String::as_str)),
        (Some("test"), Some("email"))
    );
    // The signals the rule mapped were stored (the path traced one), then the person they named
    // was deleted from the console: physically, no row of theirs is left, and the audit counts
    // what was deleted.
    let left: u64 = db
        .client
        .query(
            "SELECT count() FROM (SELECT signal_id FROM signals_cold WHERE org_id = ? AND lead_email = ? \
             UNION ALL SELECT signal_id FROM signals_hot WHERE org_id = ? AND lead_email = ?)",
        )
        .bind(&org)
        .bind("test@example.com")
        .bind(&org)
        .bind("test@example.com")
        .fetch_one()
        .await
        .expect("count");
    assert_eq!(left, 0, "the deleted person's rows");
    let deleted: u64 = db
        .client
        .query("SELECT sum(rows) FROM people_audit WHERE org_id = ? AND action = 'delete' AND value = ?")
        .bind(&org)
        .bind("test@example.com")
        .fetch_one()
        .await
        .expect("audit");
    assert!(deleted >= 2, "the audit counts the rows deleted: {deleted}");
    let rows = keys::list(&db.client, &org).await.expect("keys");
    let names = keys::names(&db.client, &org).await.expect("names");
    let mut named: Vec<(&str, u8)> = rows.iter().map(|row| (names[&row.key_id].as_str(), row.active)).collect();
    named.sort_unstable();
    assert_eq!(named, [("Only collect", 1), ("Only ingress", 1), ("Only tracking", 1), ("Website", 0)]);
    let subscriptions = webhooks::list(&db.client, Some(&org)).await.expect("subscriptions");
    assert_eq!(subscriptions.len(), 1);
    let log = webhooks::deliveries(&db.client, &subscriptions[0].subscription_id, 10).await.expect("log");
    assert!(log.iter().any(|attempt| attempt.outcome == "delivered" && attempt.status_code == 200), "{log:?}");
    for page in [
        "01-sign-in-refused",
        "02-keys-created",
        "03-live-tail",
        "04-signal-queue",
        "05-rule-dry-run",
        "06-rules",
        "07-live-tail-mapped",
        "07b-signal-trace",
        "07c-lead-view",
        "07d-rule-applied",
        "08-webhook-created",
        "09-webhook-history",
        "09b-webhook-backfill",
        "10-overview",
        "11-overview-phone",
        "12-limits-usage",
        "13-key-revoked",
        "14-analytics",
    ] {
        let size = std::fs::metadata(shots.join(format!("{page}.png"))).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "screenshot {page}: {size} bytes");
    }
    let logs = run.stop().await;
    for secret in [TOKEN, SCOPED] {
        assert!(!logs.contains(secret), "the logs never hold an admin token");
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|line| !line.contains("Client stats")).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
