-- Which sources bring leads: leads first touched in the range by the source of their first
-- signal, and how many of them were anonymous visitors before they were leads.
-- Reads: lead_touches (rollup).
SELECT first_source AS source, count() AS leads, countIf(anonymous_before > 0) AS anonymous_first
FROM (
    SELECT argMinMerge(first_source) AS first_source, minMerge(first_ms) AS first_ms,
           countMerge(anonymous_before) AS anonymous_before
    FROM lead_touches
    WHERE org_id = {org:String}
    GROUP BY cityHash64(lead_email)
)
WHERE toDate(toDateTime(intDiv(first_ms, 1000))) BETWEEN {since:Date} AND {until:Date}
GROUP BY source
ORDER BY leads DESC, source
