-- History backfilled to a webhook subscription (`sigstage webhooks backfill`,
-- control/src/backfill.rs): one row per backfill, a new version at each change (read with FINAL).
-- A subscription has one backfill running or paused at a time.
CREATE TABLE IF NOT EXISTS webhook_backfills (
    org_id String,
    backfill_id String,
    subscription_id String,
    since_ms UInt64,
    until_ms UInt64,
    event_types Array(String),
    state String,
    total UInt64,
    per_second UInt32,
    created_ms UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (org_id, backfill_id);

-- A backfill's deliveries: webhook_queue's shape, in a queue of their own, so the scheduler
-- serves them beside the live queue, never before it, at the backfill's own rate.
CREATE TABLE IF NOT EXISTS webhook_backfill_queue (
    org_id String,
    subscription_id String,
    event_id String,
    event_type String,
    state String,
    attempts UInt32,
    next_attempt_ms UInt64,
    created_ms UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (subscription_id, event_id);
