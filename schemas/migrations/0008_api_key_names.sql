-- What people call their API keys ("Production website", "Backfill 2025"), set at creation in
-- the console or the admin API. Apart from `api_keys`, which ClickHouse 18.16 cannot give a
-- column idempotently; a key without a row here has no name.
CREATE TABLE IF NOT EXISTS api_key_names (
    org_id String,
    key_id String,
    name String,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (org_id, key_id);
