-- Each lead first touched in the range: the source and event of its first and last signal (by
-- event time, anonymous past included; ties go to the lower signal id), its signals, and how
-- many of them it sent while anonymous.
-- Reads: lead_touches (rollup).
SELECT lead AS lead_email, first_source, first_event, first_ms, last_source, last_event, last_ms, signals, anonymous_before
FROM (
    SELECT any(lead_email) AS lead,
           argMinMerge(first_source) AS first_source, argMinMerge(first_event) AS first_event, minMerge(first_ms) AS first_ms,
           argMaxMerge(last_source) AS last_source, argMaxMerge(last_event) AS last_event, maxMerge(last_ms) AS last_ms,
           countMerge(signals) AS signals, countMerge(anonymous_before) AS anonymous_before
    FROM lead_touches
    WHERE org_id = {org:String}
    GROUP BY cityHash64(lead_email)
)
WHERE toDate(toDateTime(intDiv(first_ms, 1000))) BETWEEN {since:Date} AND {until:Date}
ORDER BY first_ms, lead
