-- top_events over the signal tables instead of its rollup.
SELECT event, kind, count() AS signals
FROM (
    SELECT event, kind FROM signals_cold
    WHERE org_id = {org:String} AND event_date BETWEEN {since:Date} AND {until:Date}
    UNION ALL
    SELECT event, kind FROM signals_hot
    WHERE org_id = {org:String} AND event_date BETWEEN {since:Date} AND {until:Date} AND attributed_by != 'rehydrated'
)
GROUP BY event, kind
ORDER BY signals DESC, event, kind
LIMIT 20
