//! Key lifecycle through the CLI: create, look up, revoke, expiry; never stored in clear.

use control::keys::{AuthError, Endpoint, KeySet};

use crate::support::{sigstage, stderr, stdout, TestDb};

fn create(db: &TestDb, extra: &[&str]) -> String {
    let mut args = vec!["keys", "create", "--org", "acme"];
    args.extend_from_slice(extra);
    let output = sigstage(&args, &db.vars);
    assert!(output.status.success(), "{}", stderr(&output));
    let key = stdout(&output);
    assert_eq!(key.lines().count(), 1, "stdout is only the key: {key:?}");
    key.trim().to_owned()
}

#[tokio::test]
async fn create_look_up_revoke_and_expire() {
    let db = TestDb::migrated().await;
    let now = runtime::time::now_ms();

    let plain = create(&db, &[]);
    let with_secret = create(&db, &["--secret", "s3cr3t-value"]);
    let expiring = create(&db, &["--expires-at", "2099-01-01T00:00:00Z"]);
    let expired = create(&db, &["--expires-at", "2020-01-01T00:00:00Z"]);
    let collect_only = create(&db, &["--endpoints", "collect"]);

    let keys = KeySet::load(&db.client).await.expect("keys load");
    assert_eq!(keys.len(), 5);
    let check = |keys: &KeySet, key: &str, secret: Option<&str>, at: u64| {
        keys.authenticate(key, secret.map(str::as_bytes), Endpoint::SignalStaging, at)
            .map(|entry| entry.org_id.to_string())
    };
    assert_eq!(check(&keys, &plain, None, now), Ok("acme".to_owned()));
    assert_eq!(check(&keys, &with_secret, None, now), Err(AuthError::SecretRequired));
    assert_eq!(check(&keys, &with_secret, Some("wrong"), now), Err(AuthError::SecretWrong));
    assert_eq!(check(&keys, &with_secret, Some("s3cr3t-value"), now), Ok("acme".to_owned()));
    assert_eq!(check(&keys, &expiring, None, now), Ok("acme".to_owned()));
    assert_eq!(check(&keys, &expiring, None, 4_102_444_800_000), Err(AuthError::Expired), "at 2100-01-01");
    assert_eq!(check(&keys, &expired, None, now), Err(AuthError::Expired));
    assert_eq!(check(&keys, &collect_only, None, now), Err(AuthError::EndpointNotAllowed));
    assert_eq!(check(&keys, "sgk_not-a-key", None, now), Err(AuthError::Unknown));

    // Neither a key nor a secret appears anywhere in the table.
    let stored: Vec<String> = db
        .client
        .query(
            "SELECT concat(key_id, '|', org_id, '|', key_hash, '|', key_prefix, '|', secret_hash, '|', \
             arrayStringConcat(endpoints, ',')) FROM api_keys",
        )
        .fetch_all()
        .await
        .expect("rows");
    assert_eq!(stored.len(), 5);
    for row in &stored {
        for clear in [&plain, &with_secret, &expiring, &expired, &collect_only] {
            assert!(!row.contains(clear.as_str()), "key stored in clear: {row}");
        }
        assert!(!row.contains("s3cr3t-value"), "secret stored in clear: {row}");
    }

    // Revoke by key; a revoked key is refused once the key set is reloaded.
    let revoked = sigstage(&["keys", "revoke", &plain], &db.vars);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let keys = KeySet::load(&db.client).await.expect("keys reload");
    assert_eq!(check(&keys, &plain, None, now), Err(AuthError::Inactive));
    assert_eq!(check(&keys, &expiring, None, now), Ok("acme".to_owned()), "others untouched");

    // The listing shows every key's state without the keys themselves.
    let listing = sigstage(&["keys", "list", "--org", "acme"], &db.vars);
    let listing = stdout(&listing);
    assert_eq!(listing.lines().count(), 6, "{listing}");
    assert_eq!(listing.matches(" revoked ").count(), 1, "{listing}");
    assert_eq!(listing.matches(" expired ").count(), 1, "{listing}");
    assert!(!listing.contains(&plain), "{listing}");

    let unknown = sigstage(&["keys", "revoke", "key_doesnotexist"], &db.vars);
    assert!(!unknown.status.success());
    assert!(stderr(&unknown).contains("no key matches"), "{}", stderr(&unknown));
}

#[tokio::test]
async fn bad_arguments_are_refused_with_a_reason() {
    let db = TestDb::migrated().await;
    let cases = [
        (vec!["keys", "create", "--org", "ac:me"], "org id"),
        (vec!["keys", "create", "--org", "acme", "--expires-at", "tomorrow"], "--expires-at"),
        (vec!["keys", "create", "--org", "acme", "--endpoints", "bulk"], "--endpoints"),
    ];
    for (args, reason) in cases {
        let output = sigstage(&args, &db.vars);
        assert!(!output.status.success(), "{args:?}");
        assert!(stderr(&output).contains(reason), "{args:?}: {}", stderr(&output));
        assert!(stdout(&output).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_works_as_soon_as_it_is_created_and_is_revoked_at_the_next_refresh() {
    let edge = crate::support::edge::TestEdge::start().await;
    // The edge loaded its keys before this one existed, and does not reload them here.
    let key = create(&edge.db, &["--secret", "s3cr3t-value"]);
    let uri = format!("/api/signal-staging/webhook/{key}");
    let post = |secret: Option<&'static str>| {
        let mut request = axum::http::Request::post(uri.as_str()).header("content-type", "application/json");
        if let Some(secret) = secret {
            request = request.header("x-api-secret", secret);
        }
        edge.call(request.body(axum::body::Body::from(r#"{"event":"first"}"#)).expect("request"))
    };
    let answer = post(Some("s3cr3t-value")).await;
    assert_eq!(answer.status, 202, "the key works at once: {}", answer.text);
    assert_eq!(post(None).await.json["error"], "missing_api_secret", "what was looked up is checked in full");
    // A flood of well-formed keys that do not exist: each refused, and asked for at most once.
    for round in 0..2 {
        let started = std::time::Instant::now();
        for n in 0..500 {
            let unknown = format!("sgk_{:048x}", n);
            let answer = edge.post_json(&format!("/api/signal-staging/webhook/{unknown}"), "{}").await;
            assert_eq!((answer.status.as_u16(), answer.json["error"].as_str()), (401, Some("invalid_api_key")));
        }
        eprintln!("round {round}: 500 unknown keys refused in {:?}", started.elapsed());
    }
    // Revoked: refused once the edge refreshes (its bound, SIGSTAGE_CONTROL_REFRESH_MS).
    let revoked = sigstage(&["keys", "revoke", &key], &edge.db.vars);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    edge.refresh().await;
    assert_eq!(post(Some("s3cr3t-value")).await.json["error"], "inactive_api_key");
}
