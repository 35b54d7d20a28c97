-- identification_by_day over the signal tables instead of its rollup.
SELECT day, countIf(what = 'first_seen') AS first_seen, countIf(what = 'identified') AS identified
FROM (
    SELECT tupleElement(touch, 1) AS what, toDate(toDateTime(intDiv(tupleElement(touch, 2), 1000))) AS day
    FROM (
        SELECT anonymous_id, min(event_ms) AS first_seen_ms, minIf(event_ms, hot AND attributed_by != 'rehydrated') AS identified_ms,
               countIf(hot AND attributed_by != 'rehydrated') AS attributed
        FROM (
            SELECT anonymous_id, event_ms, attributed_by, 0 AS hot FROM signals_cold WHERE org_id = {org:String} AND anonymous_id != ''
            UNION ALL
            SELECT anonymous_id, event_ms, attributed_by, 1 AS hot FROM signals_hot WHERE org_id = {org:String} AND anonymous_id != ''
        )
        GROUP BY anonymous_id
    )
    ARRAY JOIN arrayFilter(t -> tupleElement(t, 2) != 0, [('first_seen', first_seen_ms), ('identified', if(attributed > 0, identified_ms, 0))]) AS touch
)
WHERE day BETWEEN {since:Date} AND {until:Date}
GROUP BY day
ORDER BY day
