-- signals_by_source_and_day over the signal tables instead of its rollup.
SELECT day, source, count() AS signals, countIf(cold) AS arrived_anonymous
FROM (
    SELECT event_date AS day, source, 1 AS cold FROM signals_cold
    WHERE org_id = {org:String} AND event_date BETWEEN {since:Date} AND {until:Date}
    UNION ALL
    SELECT event_date AS day, source, 0 AS cold FROM signals_hot
    WHERE org_id = {org:String} AND event_date BETWEEN {since:Date} AND {until:Date} AND attributed_by != 'rehydrated'
)
GROUP BY day, source
ORDER BY day, source
