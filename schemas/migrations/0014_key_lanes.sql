-- Keys marked historical: everything they send goes to the historical (overflow) lane, read
-- only when the live one is idle, whatever the endpoint. For a backfill or a known noisy
-- integration. A key without a row here sends live (bulk and /v1/import are historical anyway).
CREATE TABLE IF NOT EXISTS key_lanes (
    org_id String,
    key_id String,
    lane String,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (org_id, key_id);
