//! `sigstage import` against a real edge on a socket: JSON, NDJSON and gzip files, per-signal
//! rejections with reasons, retries of 429s, and `--resume` not re-sending confirmed chunks.

use std::io::Write;
use std::path::{Path, PathBuf};

use runtime::kafka::topics;

use crate::support::edge::{count_records, TestEdge};
use crate::support::{sigstage, stderr, stdout, unique};

async fn serve(edge: &TestEdge) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = edge.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("import"));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write");
}

fn import(edge: &TestEdge, url: &str, key: &str, extra: &[&str], files: &[&Path]) -> std::process::Output {
    let mut args: Vec<String> = vec!["import".into(), "--url".into(), url.into(), "--key".into(), key.into()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sigstage(&args, &edge.db.vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_every_format_and_reports_rejections() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let url = serve(&edge).await;
    let dir = scratch_dir();

    let array = dir.join("export.json");
    let signals: Vec<String> =
        (0..250).map(|i| format!(r#"{{"email":"lead{i}@example.com","event":"visit"}}"#)).collect();
    write(&array, format!("[{}]", signals.join(",")).as_bytes());

    let wrapped = dir.join("wrapped.json");
    write(&wrapped, br#"{"signals": [{"event": "a"}, {"event": "b"}]}"#);

    let ndjson_gz = dir.join("events.ndjson.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..120 {
        writeln!(gz, r#"{{"type":"track","event":"e{i}","anonymousId":"a{i}","messageId":"m{i}"}}"#).expect("gz");
    }
    writeln!(gz, "not json").expect("gz");
    writeln!(gz, "[1,2]").expect("gz");
    write(&ndjson_gz, &gz.finish().expect("gz"));

    let output =
        import(&edge, &url, &key, &["--chunk-size", "100", "--concurrency", "3"], &[&array, &wrapped, &ndjson_gz]);
    assert!(output.status.success(), "{}", stderr(&output));
    let summary = stdout(&output);
    assert!(summary.contains("372 accepted, 2 rejected (invalid_json: 1, invalid_payload: 1)"), "{summary}");
    assert_eq!(count_records(&edge.db.config, &edge.topic(topics::SIGNALS_HISTORICAL)), 372);

    let rejected = std::fs::read_to_string(dir.join("events.ndjson.gz.rejected.ndjson")).expect("rejected file");
    assert_eq!(rejected.lines().count(), 2);
    assert!(rejected.contains(r#""signal":"not json""#), "{rejected}");

    // A wrong key stops at once with the reason.
    let refused = import(&edge, &url, "sgk_wrong", &[], &[&wrapped]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("refused the key"), "{}", stderr(&refused));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_chunks_are_retried_until_accepted() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    edge.cli(&["limits", "set", "--org", "acme", "--rate-per-second", "4", "--burst", "1"]).await;
    let url = serve(&edge).await;
    let dir = scratch_dir();
    let file = dir.join("many.ndjson");
    let lines: Vec<String> = (0..60).map(|i| format!(r#"{{"event":"e{i}"}}"#)).collect();
    write(&file, lines.join("\n").as_bytes());

    let output = import(&edge, &url, &key, &["--chunk-size", "10", "--concurrency", "3"], &[&file]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("60 accepted, 0 rejected"), "{}", stdout(&output));
    assert_eq!(count_records(&edge.db.config, &edge.topic(topics::SIGNALS_HISTORICAL)), 60);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_sends_only_unconfirmed_chunks() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let url = serve(&edge).await;
    let dir = scratch_dir();
    let file = dir.join("history.ndjson");
    let lines: Vec<String> = (0..95).map(|i| format!(r#"{{"email":"l{i}@x.io"}}"#)).collect();
    write(&file, lines.join("\n").as_bytes());

    // As if an earlier run was interrupted after chunks 0 and 2 were confirmed, and while it
    // was writing chunk 3's line.
    write(&dir.join("history.ndjson.import-progress"), b"sigstage-import v1 chunk-size=20\n0\n2\n3");
    let output = import(&edge, &url, &key, &["--chunk-size", "20", "--resume"], &[&file]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("55 accepted, 0 rejected, 2 chunks skipped"), "{}", stdout(&output));
    let topic = edge.topic(topics::SIGNALS_HISTORICAL);
    assert_eq!(count_records(&edge.db.config, &topic), 55);

    // Everything is confirmed now: resuming again sends nothing.
    let again = import(&edge, &url, &key, &["--chunk-size", "20", "--resume"], &[&file]);
    assert!(stdout(&again).contains("0 accepted, 0 rejected, 5 chunks skipped"), "{}", stdout(&again));
    assert_eq!(count_records(&edge.db.config, &topic), 55);

    // Resuming with another chunk size would misnumber chunks: refused.
    let mismatch = import(&edge, &url, &key, &["--chunk-size", "10", "--resume"], &[&file]);
    assert!(!mismatch.status.success());
    assert!(stderr(&mismatch).contains("same --chunk-size"), "{}", stderr(&mismatch));
    let _ = std::fs::remove_dir_all(dir);
}
