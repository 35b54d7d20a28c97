-- The signal queue: signals no mapping rule of their org matched, counted by (org, source,
-- event) so a user can write rules for them. Each stream processor adds one row per group and
-- flush; always aggregate: sum(signals), min(first_seen_ms), max(last_seen_ms), and
-- argMax(sample, last_seen_ms) for a recent example payload (at most 4 KiB, cut short).
CREATE TABLE IF NOT EXISTS signal_queue (
    org_id String,
    source String,
    event String,
    signals UInt64,
    first_seen_ms UInt64,
    last_seen_ms UInt64,
    sample String,
    day Date DEFAULT toDate(toDateTime(intDiv(last_seen_ms, 1000)))
) ENGINE = MergeTree() PARTITION BY toYYYYMM(day) ORDER BY (org_id, source, event, day);
