-- Raw-signal usage per org per day, counted by the edge: one row per (org, day, outcome) and
-- flush. Outcomes: `accepted`, `overage` (accepted over the plan limit with overages on), or
-- the refusal's error code (`invalid_json`, `rate_limited`, `plan_limit_reached`, ...). SummingMergeTree folds rows over time; always
-- query with sum(signals) ... GROUP BY, never read single rows.
CREATE TABLE IF NOT EXISTS usage_daily (
    day Date,
    org_id String,
    outcome String,
    signals UInt64
) ENGINE = SummingMergeTree(signals) ORDER BY (org_id, day, outcome);
