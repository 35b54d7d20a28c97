-- Control plane: organisations, their API keys and their limits.
-- Rows are never updated in place: a change is a new row with a higher `version`
-- (epoch milliseconds), and readers take the latest with FINAL.

-- One row per organisation.
CREATE TABLE IF NOT EXISTS orgs (
    org_id String,
    name String,
    created_at_ms UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY org_id;

-- One row per API key. The key itself is never stored: `key_hash` is its hex SHA-256 and
-- `key_prefix` its first characters, for people to recognise it. `secret_hash` is the hex
-- SHA-256 of the key's shared secret, empty when it has none. `endpoints` lists the endpoint
-- types the key may use (signal_staging, collect, ingress); empty means all of them.
-- `expires_at_ms` 0 means it never expires; `active` 0 means revoked.
CREATE TABLE IF NOT EXISTS api_keys (
    key_id String,
    org_id String,
    key_hash String,
    key_prefix String,
    secret_hash String,
    endpoints Array(String),
    active UInt8,
    expires_at_ms UInt64,
    created_at_ms UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY key_id;

-- Per-org request rate (GCRA): a sustained rate and a burst. No row means the default.
CREATE TABLE IF NOT EXISTS rate_limits (
    org_id String,
    requests_per_second UInt32,
    burst UInt32,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY org_id;

-- Per-org monthly raw-signal plan limit; 0 means unlimited. With `allow_overages` 1, signals
-- over the limit are accepted and counted as overage instead of refused.
CREATE TABLE IF NOT EXISTS plan_limits (
    org_id String,
    monthly_raw_signals UInt64,
    allow_overages UInt8,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY org_id;
