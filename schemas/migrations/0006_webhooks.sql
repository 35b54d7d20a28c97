-- Webhook subscriptions per org (`sigstage webhooks`, the admin API). `secret` signs every
-- delivery and is needed in clear to do so; it is shown once, at creation. `event_types` lists
-- the event types delivered (signal.created, lead.created, lead.identified). A change is a new
-- row with a higher `version`; read with FINAL. `active` 0: not delivered to, with
-- `disabled_reason` saying why when the sink disabled it.
CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    org_id String,
    subscription_id String,
    url String,
    event_types Array(String),
    active UInt8,
    secret String,
    disabled_reason String,
    created_ms UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (org_id, subscription_id);

-- Every event the webhook sink received, so a delivery can be re-sent later.
CREATE TABLE IF NOT EXISTS webhook_events (
    org_id String,
    event_id String,
    event_type String,
    body String,
    created_ms UInt64
) ENGINE = ReplacingMergeTree(created_ms) ORDER BY (org_id, event_id);

-- One row per delivery attempt: `outcome` is delivered, retrying, gave_up, refused (target not
-- allowed), or disabled (the subscription was disabled after this attempt). `failure_count` is
-- the subscription's consecutive failures after the attempt. `response_body` keeps at most the
-- first 1024 bytes.
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    org_id String,
    subscription_id String,
    event_id String,
    event_type String,
    attempt UInt32,
    status_code UInt16,
    response_body String,
    error String,
    duration_ms UInt32,
    attempted_ms UInt64,
    failure_count UInt32,
    outcome String
) ENGINE = MergeTree() ORDER BY (org_id, subscription_id, attempted_ms, event_id);
