-- Deliveries owed, kept durably so that a slow or dead endpoint holds only its own backlog and
-- nothing waits in memory. One row per (subscription, event); a change is a new row with a
-- higher `version` (the outbox's first row has version 0, so reading the outbox again never
-- undoes progress). `state`: pending (due at `next_attempt_ms`), delivered, or failed (the
-- schedule ended, or the target is refused). `attempts`: made so far in this schedule.
CREATE TABLE IF NOT EXISTS webhook_queue (
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

-- An optional cap on deliveries per second to one subscription's endpoint (0: none).
CREATE TABLE IF NOT EXISTS webhook_rate_limits (
    subscription_id String,
    per_second UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY subscription_id;
