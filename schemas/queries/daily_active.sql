-- Distinct visitors and leads active per day. A lead counts on the days of its anonymous past
-- too. Exact up to 16 a day, within about 1.6% beyond (uniqHLL12).
-- Reads: active_daily (rollup).
SELECT day, uniqHLL12Merge(visitors) AS visitors, uniqHLL12Merge(leads) AS leads
FROM active_daily
WHERE org_id = {org:String} AND day BETWEEN {since:Date} AND {until:Date}
GROUP BY day
ORDER BY day
