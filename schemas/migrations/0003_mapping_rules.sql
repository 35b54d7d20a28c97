-- Mapping rules per org (see `sigstage rules --help` and the README). `spec` is the rule as
-- JSON: source, event, conditions and the field map. A change is a new row with a higher
-- `version`; `deleted` 1 removes the rule. Read with FINAL and WHERE deleted = 0. Rules apply
-- in `created_ms` order.
CREATE TABLE IF NOT EXISTS mapping_rules (
    org_id String,
    rule_id String,
    spec String,
    deleted UInt8,
    created_ms UInt64,
    version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (org_id, rule_id);
