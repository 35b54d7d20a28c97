-- leads_by_first_touch over signals_hot instead of its rollup.
SELECT first_source AS source, count() AS leads, countIf(anonymous_before > 0) AS anonymous_first
FROM (
    SELECT argMin(source, (event_ms, signal_id)) AS first_source, min(event_ms) AS first_ms,
           countIf(attributed_by = 'rehydrated') AS anonymous_before
    FROM signals_hot
    WHERE org_id = {org:String}
    GROUP BY lead_email
)
WHERE toDate(toDateTime(intDiv(first_ms, 1000))) BETWEEN {since:Date} AND {until:Date}
GROUP BY source
ORDER BY leads DESC, source
