//! Verified inbound webhooks: a key that requires a provider's signature (`sigstage keys
//! signing`) takes a request only when it carries one made with its secret over the body. Each
//! provider's signature is made by that provider's own published library (tests/sdk/signatures.*:
//! stripe, slack_sdk, hubspot-api-client, @octokit/webhooks-methods, standardwebhooks; Shopify
//! publishes none, so its documented recipe), and sent to `sigstage ingest`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::pipeline::{metric, start_ready};
use crate::support::{sigstage, stderr, stdout, TestDb};

/// Each provider, its signing secret as the provider shows it, and whether it signs a timestamp.
const PROVIDERS: [(&str, &str, bool); 6] = [
    ("stripe", "whsec_stripe_test_secret", true),
    ("github", "It's a Secret to Everybody", false),
    ("hubspot", "hubspot-app-client-secret", true),
    ("shopify", "shopify-app-secret", false),
    ("slack", "8f742231b10e8888abcd99yyyzzz85a5", true),
    ("standard_webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", true),
];

/// The headers `provider`'s library signs `body` with, at Unix second `timestamp`, for `url`.
fn signed_headers(provider: &str, secret: &str, timestamp: u64, url: &str, body: &str) -> Vec<(String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let state = root.join(".state/sdk");
    assert!(state.join("python").is_dir() && state.join("node/node_modules").is_dir(), "run scripts/sdk-clients.sh");
    let mut command = if matches!(provider, "github" | "standard_webhooks") {
        let mut command = Command::new("node");
        command.arg(root.join("tests/sdk/signatures.mjs")).env("NODE_PATH", state.join("node/node_modules"));
        command
    } else {
        let mut command = Command::new("python3");
        command.arg(root.join("tests/sdk/signatures.py")).env("PYTHONPATH", state.join("python"));
        command
    };
    command.args([provider, secret, &timestamp.to_string(), url]);
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("signer");
    child.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("body");
    let output = child.wait_with_output().expect("signer runs");
    assert!(output.status.success(), "{provider} signer: {}", stderr(&output));
    let headers: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&output.stdout).expect("JSON");
    headers.into_iter().map(|(name, value)| (name, value.as_str().expect("text").to_owned())).collect()
}

/// `sigstage keys signing KEY_ID --org acme --provider P`, the secret on stdin.
fn require_signing(db: &TestDb, key_id: &str, provider: &str, secret: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sigstage"))
        .args(["keys", "signing", key_id, "--org", "acme", "--provider", provider])
        .envs(&db.vars)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sigstage");
    writeln!(child.stdin.take().expect("stdin"), "{secret}").expect("secret");
    let output = child.wait_with_output().expect("sigstage runs");
    assert!(output.status.success(), "keys signing {provider}: {}", stderr(&output));
    assert!(!stderr(&output).contains(secret), "the secret is never printed");
}

/// A new key of org acme: the key and its id.
fn new_key(db: &TestDb) -> (String, String) {
    let created = sigstage(&["keys", "create", "--org", "acme"], &db.vars);
    assert!(created.status.success(), "{}", stderr(&created));
    let key_id = stderr(&created).split_whitespace().nth(1).expect("created KEY_ID").to_owned();
    (stdout(&created).trim().to_owned(), key_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_providers_signature_is_verified_before_the_202() {
    let db = TestDb::migrated().await;
    let mut keys = Vec::new();
    for (provider, secret, _) in PROVIDERS {
        let (key, key_id) = new_key(&db);
        require_signing(&db, &key_id, provider, secret);
        keys.push(key);
    }
    let (plain, _) = new_key(&db);
    let listed = sigstage(&["keys", "list", "--org", "acme"], &db.vars);
    for (provider, secret, _) in PROVIDERS {
        assert!(stdout(&listed).contains(provider), "keys list names {provider}: {}", stdout(&listed));
        assert!(!stdout(&listed).contains(secret), "keys list never shows a secret");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_sigstage"))
        .args(["keys", "signing", "key_0000000000000000", "--org", "acme", "--provider", "paypal"])
        .envs(&db.vars)
        .stdin(Stdio::null())
        .output()
        .expect("sigstage");
    assert!(!bad.status.success() && stderr(&bad).contains("no key matches"), "{}", stderr(&bad));

    let ready =
        start_ready(&db.vars, &["ingest"], &[]).await.unwrap_or_else(|(status, logs)| panic!("{status}: {logs}"));
    let http = reqwest::Client::new();
    let now = runtime::time::now_ms() / 1000;
    let post = |key: &str, body: String, headers: Vec<(String, String)>| {
        let mut request = http
            .post(format!("http://{}/api/signal-staging/webhook/{key}", ready.addr))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let answer = request.send().await.expect("answer");
            let status = answer.status().as_u16();
            let text = answer.text().await.expect("body");
            (status, serde_json::from_str::<serde_json::Value>(&text).expect("JSON"))
        }
    };

    for ((provider, secret, timestamped), key) in PROVIDERS.iter().zip(&keys) {
        let url = format!("http://{}/api/signal-staging/webhook/{key}", ready.addr);
        let body = format!(r#"{{"email":"{provider}@example.com","event":"{provider} webhook"}}"#);
        let headers = signed_headers(provider, secret, now, &url, &body);
        let (status, answer) = post(key, body.clone(), headers.clone()).await;
        assert_eq!(status, 202, "{provider}: {answer}");

        let tampered = body.replace("webhook", "forged");
        let (status, answer) = post(key, tampered, headers.clone()).await;
        assert_eq!((status, answer["error"].as_str()), (401, Some("invalid_signature")), "{provider}: {answer}");
        let named =
            headers.iter().any(|(name, _)| answer["message"].as_str().unwrap_or("").contains(&name.to_lowercase()));
        assert!(named, "{provider}: the message names the header: {answer}");

        let (status, answer) = post(key, body.clone(), Vec::new()).await;
        assert_eq!((status, answer["error"].as_str()), (401, Some("missing_signature")), "{provider}: {answer}");

        let another = if *provider == "standard_webhooks" { "whsec_YW5vdGhlciBzZWNyZXQ=" } else { "another secret" };
        let signed_by_another = signed_headers(provider, another, now, &url, &body);
        let (status, answer) = post(key, body.clone(), signed_by_another).await;
        assert_eq!((status, answer["error"].as_str()), (401, Some("invalid_signature")), "{provider}: {answer}");

        if *timestamped {
            let old = signed_headers(provider, secret, now - 600, &url, &body);
            let (status, answer) = post(key, body.clone(), old).await;
            assert_eq!((status, answer["error"].as_str()), (401, Some("stale_signature")), "{provider}: {answer}");
        }
    }

    // A signing key is not taken where no signature is checked; a key without one is as before.
    let tracking = http
        .post(format!("http://{}/v1/track", ready.addr))
        .basic_auth(&keys[0], Some(""))
        .header("content-type", "application/json")
        .body(r#"{"userId":"u1","event":"Signed Up"}"#)
        .send()
        .await
        .expect("answer");
    assert_eq!(tracking.status().as_u16(), 401);
    let answer: serde_json::Value = serde_json::from_str(&tracking.text().await.expect("body")).expect("JSON");
    assert_eq!(answer["error"], "signature_required", "{answer}");
    let (status, answer) = post(&plain, r#"{"email":"plain@example.com"}"#.into(), Vec::new()).await;
    assert_eq!(status, 202, "{answer}");

    let metrics = http.get(format!("http://{}/metrics", ready.addr)).send().await.expect("metrics");
    let metrics = metrics.text().await.expect("text");
    for (provider, _, timestamped) in PROVIDERS {
        let count = |result: &str| {
            let labels = format!(r#"provider="{provider}",result="{result}""#);
            metric(&metrics, "sigstage_ingest_signatures_total", &labels).unwrap_or(0.0)
        };
        assert_eq!(count("verified"), 1.0, "{provider}");
        assert_eq!(count("invalid"), 2.0, "{provider}");
        assert_eq!(count("missing"), 1.0, "{provider}");
        assert_eq!(count("stale"), if timestamped { 1.0 } else { 0.0 }, "{provider}");
    }
}
