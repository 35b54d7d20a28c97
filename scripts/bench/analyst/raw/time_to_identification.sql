-- time_to_identification over the signal tables instead of its rollup.
SELECT count() AS identified, countIf(identified_ms = first_seen_ms) AS on_first_signal,
       quantileExact(0.5)(identified_ms - first_seen_ms) AS median_ms,
       quantileExact(0.9)(identified_ms - first_seen_ms) AS p90_ms
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
WHERE attributed > 0 AND toDate(toDateTime(intDiv(identified_ms, 1000))) BETWEEN {since:Date} AND {until:Date}
