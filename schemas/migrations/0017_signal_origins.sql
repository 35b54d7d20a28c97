-- Where each stored signal came in (issue 24's trace): the id of the key it came with (never
-- the key), the endpoint, and the lane it was read from (live or historical). Written by the sink
-- beside the signal's rows, once per signal; read by `sigstage trace` and
-- GET /api/admin/orgs/{org}/signals/{id}.
CREATE TABLE IF NOT EXISTS signal_origins (
    org_id String,
    signal_id UInt64,
    key_id String,
    endpoint String,
    lane String,
    written_ms UInt64
) ENGINE = ReplacingMergeTree(written_ms) ORDER BY (org_id, signal_id);
