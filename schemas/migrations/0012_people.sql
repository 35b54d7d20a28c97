-- Deleting a person (GDPR Article 17) and keeping them out afterwards.
-- `suppressions`: an email or a visitor id whose later signals the stream and the sink do not
-- store, until it is lifted (`active` 0). The highest `version` of a value wins.
-- `people_audit`: every deletion, suppression and lift: who, when, what, and how many rows.
CREATE TABLE IF NOT EXISTS suppressions (
    org_id String,
    kind String,
    value String,
    active UInt8,
    actor String,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (org_id, kind, value);

CREATE TABLE IF NOT EXISTS people_audit (
    org_id String,
    at_ms UInt64,
    actor String,
    action String,
    kind String,
    value String,
    emails Array(String),
    visitors Array(String),
    rows UInt64,
    detail String
) ENGINE = MergeTree() ORDER BY (org_id, at_ms);
