-- Signals per day and source: every signal of the org once (hot or cold, rehydrated or not), and
-- how many of them arrived anonymous.
-- Reads: signals_daily (rollup).
SELECT day, source, sum(signals) AS signals, sum(arrived_anonymous) AS arrived_anonymous
FROM signals_daily
WHERE org_id = {org:String} AND day BETWEEN {since:Date} AND {until:Date}
GROUP BY day, source
ORDER BY day, source
