-- Distinct visitors and leads active per day. A lead counts on the days of its anonymous past
-- too. uniq: exact for small counts, within about 1% at volume.
-- Reads: active_daily (rollup).
SELECT day, uniqMerge(visitors) AS visitors, uniqMerge(leads) AS leads
FROM active_daily
WHERE org_id = {org:String} AND day BETWEEN {since:Date} AND {until:Date}
GROUP BY day
ORDER BY day
