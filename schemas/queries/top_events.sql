-- The 20 most frequent events, with the kind of signal that carried them, each signal once.
-- Reads: signals_daily (rollup).
SELECT event, kind, sum(signals) AS signals
FROM signals_daily
WHERE org_id = {org:String} AND day BETWEEN {since:Date} AND {until:Date}
GROUP BY event, kind
ORDER BY signals DESC, event, kind
LIMIT 20
