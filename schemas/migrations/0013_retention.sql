-- How many days of each org's signals to keep (0: for ever). The sink enforces it
-- (sink/src/retention.rs): by TTL on servers that have per-row TTL with WHERE, by ALTER DELETE on
-- ClickHouse 18.16.
CREATE TABLE IF NOT EXISTS org_retention (
    org_id String,
    days UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY org_id;
