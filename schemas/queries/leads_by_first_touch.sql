-- Which sources bring leads: leads first touched in the range by the source of their first
-- signal, and how many of them were anonymous visitors before they were leads.
-- Reads: lead_summaries (rollup; see first_and_last_touch.sql for how a touch is written).
SELECT substring(first_touch, 43, toUInt32(substring(first_touch, 37, 6)) - 100000) AS source,
       count() AS leads, countIf(anonymous_before > 0) AS anonymous_first
FROM (
    SELECT minMerge(first_touch) AS first_touch, countMerge(anonymous_before) AS anonymous_before
    FROM lead_summaries
    WHERE org_id = {org:String}
    GROUP BY cityHash64(lead_email)
)
WHERE toDate(toDateTime(intDiv(toUInt64(substring(first_touch, 1, 14)) - 10000000000000, 1000))) BETWEEN {since:Date} AND {until:Date}
GROUP BY source
ORDER BY leads DESC, source
