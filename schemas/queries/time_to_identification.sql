-- How long visitors identified in the range stayed anonymous: from their first signal to their
-- first signal attributed to a lead, in milliseconds (median and 90th percentile, exact), and
-- how many were identified by their first signal.
-- Reads: visitors (rollup).
SELECT count() AS identified, countIf(identified_ms = first_seen_ms) AS on_first_signal,
       quantileExact(0.5)(identified_ms - first_seen_ms) AS median_ms,
       quantileExact(0.9)(identified_ms - first_seen_ms) AS p90_ms
FROM (
    SELECT minMerge(first_seen_ms) AS first_seen_ms, minMerge(identified_ms) AS identified_ms
    FROM visitors
    WHERE org_id = {org:String}
    GROUP BY cityHash64(anonymous_id)
)
WHERE identified_ms != 0 AND toDate(toDateTime(intDiv(identified_ms, 1000))) BETWEEN {since:Date} AND {until:Date}
