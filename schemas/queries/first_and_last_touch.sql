-- Each lead first touched in the range: the source and event of its first and last signal (by
-- event time, anonymous past included; ties go to the lower signal id), its signals, and how
-- many of them it sent while anonymous.
-- Reads: lead_summaries (rollup; each touch a string that sorts by time and signal id, see
-- migration 10: its time is its first 14 digits less 10^13, then come 22 digits of signal id,
-- the source's length plus 100000 in 6 digits, the source and the event).
SELECT lead AS lead_email,
       substring(first_touch, 43, toUInt32(substring(first_touch, 37, 6)) - 100000) AS first_source,
       substring(first_touch, 43 + toUInt32(substring(first_touch, 37, 6)) - 100000, length(first_touch)) AS first_event,
       first_ms,
       substring(last_touch, 43, toUInt32(substring(last_touch, 37, 6)) - 100000) AS last_source,
       substring(last_touch, 43 + toUInt32(substring(last_touch, 37, 6)) - 100000, length(last_touch)) AS last_event,
       toUInt64(substring(last_touch, 1, 14)) - 10000000000000 AS last_ms,
       signals, anonymous_before
FROM (
    SELECT any(lead_email) AS lead, minMerge(first_touch) AS first_touch, maxMerge(last_touch) AS last_touch,
           toUInt64(substring(first_touch, 1, 14)) - 10000000000000 AS first_ms,
           countMerge(signals) AS signals, countMerge(anonymous_before) AS anonymous_before
    FROM lead_summaries
    WHERE org_id = {org:String}
    GROUP BY cityHash64(lead_email)
)
WHERE toDate(toDateTime(intDiv(first_ms, 1000))) BETWEEN {since:Date} AND {until:Date}
ORDER BY first_ms, lead
