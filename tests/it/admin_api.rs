//! The admin HTTP API: token required, rules added, listed and removed, the signal queue read,
//! and bad input answered with a status and a message that says what is wrong.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use control::signal_queue::{self, QueuedGroup};
use http_body_util::BodyExt;
use runtime::config::{AdminToken, Secret};
use serde_json::Value;
use tower::ServiceExt;

use crate::support::pipeline::start_ready;
use crate::support::TestDb;

const TOKEN: &str = "admin-token-for-tests";
const READ_TOKEN: &str = "read-only-token-for-tests";

const ACME_TOKEN: &str = "acme-only-token-for-tests";

fn tokens(full: Option<&str>) -> Vec<AdminToken> {
    let token = |id: &str, read_only, org: Option<&str>, secret: &str| AdminToken {
        id: id.into(),
        read_only,
        org: org.map(str::to_owned),
        secret: Secret::new(secret),
    };
    full.map(|full| {
        vec![
            token("admin", false, None, full),
            token("ops", true, None, READ_TOKEN),
            token("acme", false, Some("acme"), ACME_TOKEN),
        ]
    })
    .unwrap_or_default()
}

fn admin_router(db: &TestDb, full: Option<&str>) -> axum::Router {
    let settings = admin::Settings {
        kafka: None,
        tokens: tokens(full),
        public_url: "http://127.0.0.1:1".into(),
        tails: admin::TailLimits::default(),
        people: admin::PeopleReach::default(),
    };
    admin::router(db.client.clone(), settings)
}

async fn call(db: &TestDb, token: Option<&str>, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let router = admin_router(db, token);
    let mut request = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
    if token.is_some() {
        request = request.header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    }
    let response = router.oneshot(request.body(Body::from(body.to_owned())).expect("request")).await.expect("answer");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_token_is_required_and_checked() {
    let db = TestDb::migrated().await;
    let (status, body) = call(&db, None, "GET", "/api/admin/orgs/acme/rules", "").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("admin_api_disabled")));

    let router = admin_router(&db, Some(TOKEN));
    for authorization in [None, Some("Bearer wrong"), Some(TOKEN)] {
        let mut request = Request::get("/api/admin/orgs/acme/rules");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = router.clone().oneshot(request.body(Body::empty()).expect("request")).await.expect("answer");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}

#[tokio::test]
async fn a_read_only_token_reads_and_may_not_write() {
    let db = TestDb::migrated().await;
    let router = admin_router(&db, Some(TOKEN));
    for (method, expected) in [("GET", StatusCode::OK), ("POST", StatusCode::FORBIDDEN)] {
        let request = Request::builder()
            .method(method)
            .uri("/api/admin/orgs/acme/rules")
            .header(header::AUTHORIZATION, format!("Bearer {READ_TOKEN}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"name":"x"}"#))
            .expect("request");
        let response = router.clone().oneshot(request).await.expect("answer");
        assert_eq!(response.status(), expected, "{method}");
    }
}

#[tokio::test]
async fn rules_and_the_queue_through_http() {
    let db = TestDb::migrated().await;
    let token = Some(TOKEN);
    let rules = "/api/admin/orgs/acme/rules";

    let (status, body) = call(&db, token, "POST", rules, "{not json").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_rule")));
    let (status, body) =
        call(&db, token, "POST", rules, r#"{"name":"x","conditions":[{"path":"a","op":"like"}]}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["message"].as_str().expect("message").contains("unknown variant `like`, expected one of"), "{body}");
    let bad_regex = r#"{"name":"x","conditions":[{"path":"a","op":"regex","value":"("}]}"#;
    let (status, body) = call(&db, token, "POST", rules, bad_regex).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["problems"][0].as_str().expect("problem").starts_with("conditions[0].value: not a valid regex"));
    let (status, _) = call(&db, token, "POST", "/api/admin/orgs/bad:org/rules", r#"{"name":"x"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let rule = r#"{"name":"pricing","source":"segment","event":"page_view",
        "conditions":[{"path":"properties.url","op":"contains","value":"/pricing"}],"map":{"custom.page":"properties.url"}}"#;
    let (status, created) = call(&db, token, "POST", rules, rule).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id");
    let (status, listed) = call(&db, token, "GET", rules, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["rules"].as_array().map(|r| r.len()), Some(1));
    assert_eq!(listed["rules"][0]["id"], id);
    assert_eq!(listed["rules"][0]["conditions"][0]["op"], "contains");

    let (status, _) = call(&db, token, "DELETE", &format!("{rules}/{id}"), "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&db, token, "DELETE", &format!("{rules}/{id}"), "").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("rule_not_found")));
    let (_, listed) = call(&db, token, "GET", rules, "").await;
    assert_eq!(listed["rules"], serde_json::json!([]));

    // Two processors' flushes of one group read back as one.
    let group = |signals, first_seen_ms, last_seen_ms| QueuedGroup {
        org_id: "acme".into(),
        source: "segment".into(),
        event: "Clicked".into(),
        signals,
        first_seen_ms,
        last_seen_ms,
        sample: format!("{{\"at\":{last_seen_ms}}}"),
    };
    signal_queue::append(&db.client, &[group(3, 100, 200), group(2, 50, 300)]).await.expect("queue rows");
    let (status, body) = call(&db, token, "GET", "/api/admin/orgs/acme/queue", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["groups"],
        serde_json::json!([{"org_id": "acme", "source": "segment", "event": "Clicked", "signals": 5,
            "first_seen_ms": 50, "last_seen_ms": 300, "sample": "{\"at\":300}"}])
    );
    let (status, _) = call(&db, token, "GET", "/api/admin/nothing", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn webhook_subscriptions_through_http() {
    let db = TestDb::migrated().await;
    let token = Some(TOKEN);
    let hooks = "/api/admin/orgs/acme/webhooks";
    let (status, body) = call(&db, token, "POST", hooks, r#"{"url":"ftp://x","events":["lead.created"]}"#).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_subscription")));
    let (status, body) =
        call(&db, token, "POST", hooks, r#"{"url":"https://x.io/in","events":["post.created"]}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().expect("message").contains("post.created"), "{body}");

    let (status, created) =
        call(&db, token, "POST", hooks, r#"{"url":"https://x.io/in","events":["lead.created","signal.created"]}"#)
            .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(created["secret"].as_str().expect("secret, once").starts_with("whsec_"));
    let id = created["subscription_id"].as_str().expect("id");
    let (_, listed) = call(&db, token, "GET", hooks, "").await;
    assert_eq!(listed["subscriptions"][0]["subscription_id"], id);
    assert!(listed["subscriptions"][0].get("secret").is_none(), "never listed: {listed}");

    let (status, changed) = call(&db, token, "POST", &format!("{hooks}/{id}/disable"), "").await;
    assert_eq!((status, changed["active"].as_u64()), (StatusCode::OK, Some(0)));
    let (status, log) = call(&db, token, "GET", &format!("{hooks}/{id}/deliveries"), "").await;
    assert_eq!((status, log["deliveries"].clone()), (StatusCode::OK, serde_json::json!([])));
    let (status, body) = call(&db, token, "POST", &format!("{hooks}/{id}/resend/1.lead.created"), "").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("event_not_found")));
    let (status, body) = call(&db, token, "POST", &format!("/api/admin/orgs/other/webhooks/{id}/enable"), "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("subscription_not_found")),
        "another org's"
    );

    // Recover and rate limits, with their bodies checked.
    let recover = format!("{hooks}/{id}/recover");
    let (status, body) = call(&db, token, "POST", &recover, r#"{"since":"yesterday"}"#).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_recover")));
    let (status, body) = call(&db, token, "POST", &recover, r#"{"since_ms":0}"#).await;
    assert_eq!((status, body["queued"].as_u64()), (StatusCode::ACCEPTED, Some(0)), "{body}");
    let limit = format!("{hooks}/{id}/rate-limit");
    let (status, body) = call(&db, token, "PUT", &limit, r#"{"per_second":-1}"#).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_rate_limit")));
    let (status, _) = call(&db, token, "PUT", &limit, r#"{"per_second":20}"#).await;
    assert_eq!(status, StatusCode::OK);
    let limits = control::deliveries::rate_limits(&db.client).await.expect("limits");
    assert_eq!(limits, [(id.to_owned(), 20)]);
    let (status, _) =
        call(&db, token, "PUT", &format!("/api/admin/orgs/other/webhooks/{id}/rate-limit"), r#"{"per_second":1}"#)
            .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another org's");

    // A backfill of stored history, its progress, and stopping it, with its bodies checked.
    let past = control::webhooks::StoredEvent {
        org_id: "acme".into(),
        event_id: "7.lead.created".into(),
        event_type: "lead.created".into(),
        body: String::from_utf8(schemas::events::encode("lead.created", 7, "acme", 1_000, b"{}")).expect("UTF-8"),
        created_ms: 1_000,
    };
    control::webhooks::store_events(&db.client, &[past]).await.expect("a stored event");
    let backfill = format!("{hooks}/{id}/backfill");
    for (body, code) in [
        (r#"{"since":"yesterday"}"#, "invalid_backfill"),
        (r#"{"since_ms":0,"events":["post.created"]}"#, "invalid_subscription"),
        (r#"{"since_ms":0,"per_second":0}"#, "invalid_subscription"),
    ] {
        let (status, answer) = call(&db, token, "POST", &backfill, body).await;
        assert_eq!((status.is_client_error(), answer["error"].as_str()), (true, Some(code)), "{body}: {answer}");
    }
    let (status, started) = call(&db, token, "POST", &backfill, r#"{"since_ms":0,"events":["lead.created"]}"#).await;
    assert_eq!((status, started["total"].as_u64()), (StatusCode::ACCEPTED, Some(1)), "{started}");
    let (status, open) = call(&db, token, "POST", &backfill, r#"{"since_ms":0}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "one open at a time: {open}");
    let (status, listed) = call(&db, token, "GET", &format!("{hooks}/{id}/backfills"), "").await;
    assert_eq!((status, listed[0]["progress"]["pending"].as_u64()), (StatusCode::OK, Some(1)), "{listed}");
    let backfill_id = started["backfill_id"].as_str().expect("id");
    let act = |action: &str| format!("{hooks}/{id}/backfills/{backfill_id}/{action}");
    let (status, paused) = call(&db, token, "POST", &act("pause"), "").await;
    assert_eq!((status, paused["state"].as_str()), (StatusCode::OK, Some("paused")), "{paused}");
    let (status, body) = call(&db, token, "POST", &act("explode"), "").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_action")));
    let (status, body) = call(&db, token, "POST", &format!("{hooks}/{id}/backfills/backfill_x/cancel"), "").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some("backfill_not_found")));
    let (status, cancelled) = call(&db, token, "POST", &act("cancel"), "").await;
    assert_eq!((status, cancelled["state"].as_str()), (StatusCode::OK, Some("cancelled")), "{cancelled}");
}

#[tokio::test]
async fn keys_limits_and_usage_through_http() {
    let db = TestDb::migrated().await;
    let token = Some(TOKEN);
    let keys = "/api/admin/orgs/acme/keys";
    let (status, body) = call(&db, token, "POST", keys, r#"{"endpoints":["bogus"]}"#).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_key")));
    assert!(body["message"].as_str().expect("message").contains("tracking"), "{body}");
    let (status, _) = call(&db, token, "POST", keys, r#"{"expires_at_ms":1}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an expiry in the past");

    let (status, created) = call(&db, token, "POST", keys, r#"{"secret":"s3cret","endpoints":["tracking"]}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (key, key_id) = (created["key"].as_str().expect("key, once"), created["key_id"].as_str().expect("id"));
    let (status, listed) = call(&db, token, "GET", keys, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["keys"][0]["key_id"], key_id);
    assert_eq!(
        (listed["keys"][0]["has_secret"].as_bool(), listed["keys"][0]["active"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(listed["keys"][0]["endpoints"], serde_json::json!(["tracking"]));
    let text = listed.to_string();
    assert!(!text.contains(key) && !text.contains("hash") && !text.contains("s3cret"), "never the key: {text}");

    // A provider's signature, required and then no longer; the signing secret is never shown.
    let signing = format!("{keys}/{key_id}/signing");
    let (status, body) = call(&db, token, "PUT", &signing, r#"{"provider":"paypal","secret":"x"}"#).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_signing")), "{body}");
    assert!(body["message"].as_str().expect("message").contains("standard_webhooks"), "{body}");
    let (status, body) =
        call(&db, token, "PUT", &signing, r#"{"provider":"standard_webhooks","secret":"plain"}"#).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_signing")), "{body}");
    let other = format!("/api/admin/orgs/other/keys/{key_id}/signing");
    let (status, _) = call(&db, token, "PUT", &other, r#"{"provider":"github","secret":"gh-secret"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another org's key");
    let (status, body) = call(&db, token, "PUT", &signing, r#"{"provider":"github","secret":"gh-secret"}"#).await;
    assert_eq!((status, body["signing_provider"].as_str()), (StatusCode::OK, Some("github")), "{body}");
    let (_, listed) = call(&db, token, "GET", keys, "").await;
    assert_eq!(listed["keys"][0]["signing_provider"], "github");
    assert!(!listed.to_string().contains("gh-secret"), "never the signing secret: {listed}");
    let (status, _) = call(&db, token, "DELETE", &signing, "").await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = call(&db, token, "GET", keys, "").await;
    assert_eq!(listed["keys"][0]["signing_provider"], Value::Null);

    let (status, _) = call(&db, token, "DELETE", &format!("/api/admin/orgs/other/keys/{key_id}"), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another org's key");
    let (status, revoked) = call(&db, token, "DELETE", &format!("{keys}/{key_id}"), "").await;
    assert_eq!((status, revoked["active"].as_bool()), (StatusCode::OK, Some(false)));

    let limits = "/api/admin/orgs/acme/limits";
    let (status, none) = call(&db, token, "GET", limits, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (none["rate"].clone(), none["plan"].clone(), none["used_this_month"].as_u64()),
        (Value::Null, Value::Null, Some(0))
    );
    let (status, body) = call(&db, token, "PUT", limits, r#"{"burst":5}"#).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_limits")), "burst alone");
    let (status, body) = call(&db, token, "PUT", limits, r#"{"rate":1}"#).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_limits")));
    let (_, set) = call(&db, token, "PUT", limits, r#"{"requests_per_second":10}"#).await;
    assert_eq!(set["rate"], serde_json::json!({"requests_per_second": 10, "burst": 10}));
    let (_, set) =
        call(&db, token, "PUT", limits, r#"{"burst":25,"monthly_raw_signals":1000,"allow_overages":true}"#).await;
    assert_eq!(set["rate"], serde_json::json!({"requests_per_second": 10, "burst": 25}));
    assert_eq!(set["plan"], serde_json::json!({"monthly_raw_signals": 1000, "allow_overages": true}));

    db.client
        .query("INSERT INTO usage_daily (day, org_id, outcome, signals) VALUES (today(), 'acme', 'accepted', 7), (today(), 'acme', 'rate_limited', 2), (today(), 'other', 'accepted', 5)")
        .execute()
        .await
        .expect("usage rows");
    let (status, usage) = call(&db, token, "GET", "/api/admin/orgs/acme/usage?days=7", "").await;
    assert_eq!(status, StatusCode::OK);
    let outcomes: Vec<(String, u64)> = usage["usage"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| (row["outcome"].as_str().expect("outcome").to_owned(), row["signals"].as_u64().expect("signals")))
        .collect();
    assert_eq!(outcomes, [("accepted".to_owned(), 7), ("rate_limited".to_owned(), 2)]);
    let (status, _) = call(&db, token, "GET", "/api/admin/orgs/acme/usage?days=0", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, used) = call(&db, token, "GET", limits, "").await;
    assert_eq!(used["used_this_month"].as_u64(), Some(7));

    // A read-only token may read all of it, and change none of it.
    let router = admin_router(&db, Some(TOKEN));
    let request = Request::put(limits)
        .header(header::AUTHORIZATION, format!("Bearer {READ_TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"requests_per_second":1}"#))
        .expect("request");
    assert_eq!(router.oneshot(request).await.expect("answer").status(), StatusCode::FORBIDDEN);
}

/// Sends one request with these headers; answers the status, the headers and the JSON body.
async fn send(
    router: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(uri).header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response =
        router.clone().oneshot(request.body(Body::from(body.to_owned())).expect("request")).await.expect("answer");
    let (status, headers) = (response.status(), response.headers().clone());
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn rules_are_edited_reordered_and_dry_run_on_the_queue() {
    let db = TestDb::migrated().await;
    let token = Some(TOKEN);
    let rules = "/api/admin/orgs/acme/rules";
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        let (status, created) = call(&db, token, "POST", rules, &format!(r#"{{"name":"{name}"}}"#)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        ids.push(created["id"].as_str().expect("id").to_owned());
    }
    let order = serde_json::json!({"rule_ids": [&ids[2], &ids[0], &ids[1]]}).to_string();
    let (status, body) = call(&db, token, "PUT", &format!("{rules}/order"), &order).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names = |listed: &Value| -> Vec<String> {
        listed["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .map(|r| r["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let (_, listed) = call(&db, token, "GET", rules, "").await;
    assert_eq!(names(&listed), ["third", "first", "second"]);
    let partial = serde_json::json!({"rule_ids": [&ids[0], &ids[0], &ids[1]]}).to_string();
    let (status, body) = call(&db, token, "PUT", &format!("{rules}/order"), &partial).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_rule")), "{body}");

    let (status, edited) =
        call(&db, token, "PUT", &format!("{rules}/{}", ids[0]), r#"{"name":"renamed","event":"Signed Up"}"#).await;
    assert_eq!((status, edited["event"].as_str()), (StatusCode::OK, Some("Signed Up")), "{edited}");
    let (_, listed) = call(&db, token, "GET", rules, "").await;
    assert_eq!(names(&listed), ["third", "renamed", "second"], "an edit keeps the rule's place");
    let (status, _) = call(&db, token, "PUT", &format!("{rules}/rule_nothing"), r#"{"name":"x"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let group = |event: &str, sample: &str| QueuedGroup {
        org_id: "acme".into(),
        source: "segment".into(),
        event: event.into(),
        signals: 4,
        first_seen_ms: 1,
        last_seen_ms: 2,
        sample: sample.into(),
    };
    signal_queue::append(
        &db.client,
        &[
            group(
                "Demo Requested",
                r#"{"properties":{"work_email":"ada@acme.io","plan":"pro"},"traits":{"title":"CTO"}}"#,
            ),
            group("Clicked", r#"{"properties":{"button":"x"}}"#),
            group("Cut", r#"{"properties":{"text":"abc"#),
        ],
    )
    .await
    .expect("queue rows");
    let rule = r#"{"name":"demo","source":"segment","conditions":[{"path":"properties.plan","op":"in","values":["pro"]}],
        "map":{"email":"properties.work_email","custom.plan":"properties.plan"}}"#;
    let (status, run) = call(&db, token, "POST", &format!("{rules}/dry-run"), rule).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!((run["matched_groups"].as_u64(), run["matched_signals"].as_u64()), (Some(1), Some(4)), "{run}");
    let result = |event: &str| result_of(&run, event);
    assert_eq!(
        result("Demo Requested"),
        serde_json::json!({"checked": true, "matches": true, "email": "ada@acme.io", "fields": {"custom.plan": "pro", "title": "CTO"}})
    );
    assert_eq!(result("Clicked"), serde_json::json!({"checked": true, "matches": false}));
    assert_eq!(result("Cut")["checked"], false);
    let (_, listed) = call(&db, token, "GET", rules, "").await;
    assert_eq!(listed["rules"].as_array().map(Vec::len), Some(3), "a dry run saves nothing");
    let (status, body) = call(&db, token, "POST", &format!("{rules}/dry-run"), r#"{"name":""}"#).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_rule")));

    // "Create rule" on a group: its email at properties.work_email is pre-filled (it once was not).
    let suggest = format!("{rules}/suggest");
    let (status, suggested) =
        call(&db, token, "POST", &suggest, r#"{"source":"segment","event":"Demo Requested"}"#).await;
    assert_eq!(status, StatusCode::OK, "{suggested}");
    assert_eq!(suggested["map"], serde_json::json!({"email": "properties.work_email", "title": "traits.title"}));
    assert_eq!(suggested["conditions"], serde_json::json!([{"path": "properties.plan", "op": "exists"}]));
    assert_eq!(suggested["name"], "Demo Requested from segment");
    // The suggestion is a rule as POST …/rules takes it, and its dry run maps the email.
    let (status, run) = call(&db, token, "POST", &format!("{rules}/dry-run"), &suggested.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(result_of(&run, "Demo Requested")["email"], "ada@acme.io", "{run}");
    let typeform = r#"{"source":"typeform","sample":{"form_response":{"answers":[
        {"type":"email","email":"bo@acme.io","field":{"ref":"email"}}]}}}"#;
    let (status, given) = call(&db, token, "POST", &suggest, typeform).await;
    assert_eq!((status, given["map"]["email"].as_str()), (StatusCode::OK, Some("form_response.answers.0.email")));
    assert_eq!(given["name"], "Any event from typeform", "no event: any");
    for (body, expected, code) in [
        (r#"{"source":"segment","event":"Nothing"}"#, StatusCode::NOT_FOUND, "queue_group_not_found"),
        (r#"{"source":"segment","event":"Cut"}"#, StatusCode::UNPROCESSABLE_ENTITY, "sample_cut"),
        (r#"{"source":"segment","sample":"{not json"}"#, StatusCode::BAD_REQUEST, "invalid_sample"),
        (r#"{"event":"Demo Requested"}"#, StatusCode::UNPROCESSABLE_ENTITY, "invalid_suggestion"),
    ] {
        let (status, answer) = call(&db, token, "POST", &suggest, body).await;
        assert_eq!((status, answer["error"].as_str()), (expected, Some(code)), "{body}: {answer}");
        assert!(!answer["message"].as_str().unwrap_or_default().is_empty(), "{answer}");
    }
    // The CLI reads the same group the same way.
    let cli = crate::support::sigstage(
        &["rules", "suggest", "--org", "acme", "--source", "segment", "--event", "Demo Requested"],
        &db.vars,
    );
    assert!(cli.status.success(), "{}", crate::support::stderr(&cli));
    let printed: Value = serde_json::from_slice(&cli.stdout).expect("the rule's JSON");
    assert_eq!(printed, suggested);
    let cli = crate::support::sigstage(
        &["rules", "suggest", "--org", "acme", "--source", "segment", "--event", "Clicked"],
        &db.vars,
    );
    assert!(crate::support::stderr(&cli).contains("no email found"), "{}", crate::support::stderr(&cli));
}

fn result_of(run: &Value, event: &str) -> Value {
    run["samples"].as_array().expect("samples").iter().find(|s| s["event"] == event).expect("sample")["result"].clone()
}

#[tokio::test]
async fn a_token_scoped_to_an_org_sees_only_that_org() {
    let db = TestDb::migrated().await;
    let router = admin_router(&db, Some(TOKEN));
    let acme = format!("Bearer {ACME_TOKEN}");
    let auth = [("authorization", acme.as_str())];
    let (status, _, _) = send(&router, "GET", "/api/admin/orgs/acme/rules", &auth, "").await;
    assert_eq!(status, StatusCode::OK);
    // An empty or encoded org never stands for another, or for every org.
    let spec = serde_json::from_str(r#"{"name":"secret plan"}"#).expect("spec");
    control::rules::add(&db.client, "globex", spec).await.expect("globex rule");
    for uri in ["/api/admin/orgs//rules", "/api/admin/orgs/%61cme/rules", "/api/admin/orgs//webhooks"] {
        let (status, _, body) = send(&router, "GET", uri, &auth, "").await;
        assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_org")), "{uri}: {body}");
    }
    let all = format!("Bearer {TOKEN}");
    let (status, _, body) =
        send(&router, "GET", "/api/admin/orgs//rules", &[("authorization", all.as_str())], "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not every org's rules, even for a full token: {body}");
    for (method, uri) in [
        ("GET", "/api/admin/orgs/globex/rules"),
        ("POST", "/api/admin/orgs/globex/keys"),
        ("GET", "/api/admin/orgs/globex/tail"),
    ] {
        let (status, _, body) = send(&router, method, uri, &auth, "{}").await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("admin_token_other_org")),
            "{method} {uri}"
        );
    }
    for org in ["acme", "globex"] {
        control::orgs::ensure(&db.client, org).await.expect("org");
    }
    let (_, _, seen) = send(&router, "GET", "/api/admin/orgs", &auth, "").await;
    assert_eq!(
        seen["orgs"].as_array().map(|orgs| orgs.iter().map(|o| o["org_id"].clone()).collect::<Vec<_>>()),
        Some(vec!["acme".into()])
    );
    let (_, _, seen) = send(&router, "GET", "/api/admin/orgs", &[("authorization", all.as_str())], "").await;
    assert_eq!(seen["orgs"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn console_sessions_need_the_right_token_and_csrf() {
    let db = TestDb::migrated().await;
    let router = admin_router(&db, Some(TOKEN));
    let (status, _, body) =
        send(&router, "POST", "/console/session", &[], r#"{"token":"wrong-token-of-some-length"}"#).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_admin_token")));

    let (status, headers, session) =
        send(&router, "POST", "/console/session", &[], &format!(r#"{{"token":"{TOKEN}"}}"#)).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let set_cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains(TOKEN), "the cookie does not carry the token");
    assert!(!set_cookie.contains("Secure"), "plain HTTP: a Secure cookie would never come back");
    let behind_tls = [("x-forwarded-proto", "https")];
    let (status, tls_headers, _) =
        send(&router, "POST", "/console/session", &behind_tls, &format!(r#"{{"token":"{TOKEN}"}}"#)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(tls_headers[header::SET_COOKIE].to_str().expect("ascii").ends_with("; Secure"), "behind TLS: Secure");
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let csrf = session["csrf"].as_str().expect("csrf").to_owned();
    assert_eq!(session["public_url"], "http://127.0.0.1:1");

    let (status, _, again) = send(&router, "GET", "/console/session", &[("cookie", &cookie)], "").await;
    assert_eq!((status, again["csrf"].as_str()), (StatusCode::OK, Some(csrf.as_str())));
    let (status, _, _) = send(&router, "GET", "/api/admin/orgs/acme/rules", &[("cookie", &cookie)], "").await;
    assert_eq!(status, StatusCode::OK, "reads need only the cookie");
    let rule = r#"{"name":"from the console"}"#;
    let (status, _, body) = send(&router, "POST", "/api/admin/orgs/acme/rules", &[("cookie", &cookie)], rule).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("csrf_token_missing")));
    let wrong = [("cookie", cookie.as_str()), ("x-csrf-token", "0123456789abcdef0123456789abcdef")];
    let (status, _, body) = send(&router, "POST", "/api/admin/orgs/acme/rules", &wrong, rule).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("csrf_token_invalid")));
    let right = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let (status, _, _) = send(&router, "POST", "/api/admin/orgs/acme/rules", &right, rule).await;
    assert_eq!(status, StatusCode::CREATED);
    let forged = cookie.replace("admin.", "ops.");
    let (status, _, _) = send(&router, "GET", "/api/admin/orgs/acme/rules", &[("cookie", &forged)], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, headers, _) = send(&router, "GET", "/console", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_SECURITY_POLICY].to_str().expect("ascii").contains("script-src 'self'"));
    let (status, headers, _) = send(&router, "DELETE", "/console/session", &right, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(headers[header::SET_COOKIE].to_str().expect("ascii").contains("Max-Age=0"));
}

/// Wrong tokens from one address, through a real listener (which records each client's
/// address): ten are answered 401, then the address is refused 429 with `Retry-After`, even
/// with the right token, at sign-in and at the API alike.
#[tokio::test]
async fn wrong_tokens_from_an_address_are_throttled() {
    let db = TestDb::migrated().await;
    let extra = [("SIGSTAGE_ADMIN_ADDR", "127.0.0.1:0"), ("SIGSTAGE_ADMIN_TOKEN", TOKEN)];
    let run =
        start_ready(&db.vars, &["ingest"], &extra).await.unwrap_or_else(|(status, logs)| panic!("{status}: {logs}"));
    let admin = format!("http://{}", run.admin.clone().expect("the admin listener's line"));
    let http = reqwest::Client::new();
    let rules = format!("{admin}/api/admin/orgs/acme/rules");
    let sign_in = |token: &str| {
        http.post(format!("{admin}/console/session"))
            .header(header::CONTENT_TYPE.as_str(), "application/json")
            .body(serde_json::json!({"token": token}).to_string())
    };

    for n in 0..10 {
        let request = if n % 2 == 0 {
            http.get(&rules).bearer_auth(format!("wrong-token-{n:08}"))
        } else {
            sign_in("wrong-token-guess")
        };
        let response = request.send().await.expect("answer");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "wrong token {n}");
    }
    for request in [http.get(&rules).bearer_auth(TOKEN), sign_in(TOKEN)] {
        let response = request.send().await.expect("answer");
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS, "the address is barred, right token or not");
        let retry_after: u64 =
            response.headers()[header::RETRY_AFTER].to_str().expect("ascii").parse().expect("seconds");
        assert!((1..=60).contains(&retry_after), "retry after {retry_after} s");
        let body: Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
        assert_eq!(body["error"], "too_many_failed_attempts", "{body}");
    }
    let mut child = run.child;
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("stopped");
    let logs = run.logs.await.expect("logs");
    assert!(logs.contains("too many wrong admin tokens"), "the bar is logged");
    assert!(!logs.contains(TOKEN), "the token is never logged");
}

/// The OpenAPI document and the router come from one list; this checks the document names
/// every path the console calls, and that each documented operation is routed (answered by
/// its handler, not by the catch-all).
#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let db = TestDb::migrated().await;
    let router = admin_router(&db, Some(TOKEN));
    let (status, _, document) = send(&router, "GET", "/api/admin/openapi.json", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    let script = include_str!("../../admin/src/console/app.js");
    for used in [
        "/overview",
        "/keys",
        "/queue",
        "/rules",
        "/rules/dry-run",
        "/rules/order",
        "/tail",
        "/webhooks",
        "/limits",
        "/usage",
        "/people/suppressions",
        "/people/audit",
    ] {
        assert!(script.contains(&format!("orgPath(org, '{used}")), "the console calls {used}");
        assert!(paths.contains_key(&format!("/api/admin/orgs/{{org}}{used}")), "{used} is documented");
    }
    let bearer = format!("Bearer {TOKEN}");
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().expect("operations").keys() {
            operations += 1;
            let uri = path.replace("{org}", "acme").replace(['{', '}'], "");
            let (status, _, body) =
                send(&router, &method.to_uppercase(), &uri, &[("authorization", &bearer)], "{}").await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(body["error"].as_str(), Some("not_found"), "{method} {path} is documented but not routed");
        }
    }
    assert!(operations >= 26, "{operations}");
    let (_, _, body) = send(&router, "GET", "/api/admin/orgs/acme/nothing", &[("authorization", &bearer)], "").await;
    assert_eq!(body["error"], "not_found");
}

/// The console's Analytics page reads the analysts' library through the admin API: an answer
/// as ClickHouse's JSON, and bad questions refused with what is wrong.
#[tokio::test]
async fn library_queries_through_http() {
    let db = TestDb::migrated().await;
    db.client
        .query(
            "INSERT INTO signals_cold (org_id, anonymous_id, signal_id, source, event, event_ms) VALUES \
             ('acme', 'v1', 1, 'segment', 'Viewed', 1772445600000), ('acme', 'v2', 2, 'pixel', 'Viewed', 1772445600000), \
             ('globex', 'v3', 3, 'segment', 'Viewed', 1772445600000)",
        )
        .execute()
        .await
        .expect("signals");
    let uri = "/api/admin/orgs/acme/analytics/signals_by_source_and_day?since=2026-03-01&until=2026-03-31";
    let (status, body) = call(&db, Some(TOKEN), "GET", uri, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rows: Vec<(&str, &str, &str)> = body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|row| {
            let field = |name: &str| row[name].as_str().unwrap_or_else(|| panic!("{name} in {row}"));
            (field("day"), field("source"), field("signals"))
        })
        .collect();
    assert_eq!(rows, [("2026-03-02", "pixel", "1"), ("2026-03-02", "segment", "1")]);

    for (uri, status, code, says) in [
        (
            "/api/admin/orgs/acme/analytics/nope",
            StatusCode::NOT_FOUND,
            "unknown_query",
            "the library has signals_by_source_and_day",
        ),
        (
            "/api/admin/orgs/acme/analytics/top_events?since=March",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            "since \"March\" is not a Date",
        ),
        ("/api/admin/orgs/acme/analytics/funnel", StatusCode::BAD_REQUEST, "bad_parameter", "needs days (UInt32)"),
        (
            "/api/admin/orgs/acme/analytics/top_events?org=globex",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            "the org is the path's",
        ),
        (
            "/api/admin/orgs/acme/analytics/top_events?color=red",
            StatusCode::BAD_REQUEST,
            "bad_parameter",
            "no parameter color",
        ),
    ] {
        let (got, body) = call(&db, Some(TOKEN), "GET", uri, "").await;
        assert_eq!((got, body["error"].as_str()), (status, Some(code)), "{uri}: {body}");
        assert!(body["message"].as_str().unwrap_or_default().contains(says), "{uri}: {body}");
    }
}

/// A live tail is long-lived by design, so it has a cap of its own and ends after its idle
/// limit without a signal to show, saying why; its place is then free again.
#[tokio::test]
async fn live_tails_are_capped_and_end_when_idle() {
    let db = TestDb::migrated().await;
    runtime::kafka::prepare_topics(&db.config.kafka).await.expect("topics");
    let settings = admin::Settings {
        kafka: Some(db.config.kafka.clone()),
        tokens: tokens(Some(TOKEN)),
        public_url: "http://127.0.0.1:1".into(),
        tails: admin::TailLimits { most: 1, idle: std::time::Duration::from_secs(1) },
        people: admin::PeopleReach::default(),
    };
    let router = admin::router(db.client.clone(), settings);
    let open = || {
        let request = Request::get("/api/admin/orgs/acme/tail")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .expect("request");
        router.clone().oneshot(request)
    };
    // Topics seconds old may not be in the broker's metadata yet: the tail answers 503 until then.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let tail = loop {
        let tail = open().await.expect("answer");
        if tail.status() != StatusCode::SERVICE_UNAVAILABLE || std::time::Instant::now() > deadline {
            break tail;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(tail.status(), StatusCode::OK);
    let second = open().await.expect("answer");
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let refusal: Value =
        serde_json::from_slice(&second.into_body().collect().await.expect("body").to_bytes()).expect("json");
    assert_eq!(refusal["error"], "too_many_tails");
    assert!(refusal["message"].as_str().unwrap_or_default().contains("SIGSTAGE_ADMIN_MAX_TAILS"), "{refusal}");

    let started = std::time::Instant::now();
    let mut body = tail.into_body();
    let mut said = String::new();
    while let Some(frame) =
        tokio::time::timeout(std::time::Duration::from_secs(30), body.frame()).await.expect("the tail ends within 30 s")
    {
        if let Ok(data) = frame.expect("frame").into_data() {
            said.push_str(&String::from_utf8_lossy(&data));
        }
    }
    assert!(said.contains("event: ready"), "{said}");
    assert!(said.contains("event: end") && said.contains("SIGSTAGE_ADMIN_TAIL_IDLE_MS"), "{said}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900), "ended after {:?}", started.elapsed());
    // The ended tail gave its place back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let again = open().await.expect("answer");
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the place of an ended tail was not given back");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
