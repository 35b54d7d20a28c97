-- first_and_last_touch over signals_hot instead of its rollup.
SELECT lead_email, first_source, first_event, first_ms, last_source, last_event, last_ms, signals, anonymous_before
FROM (
    SELECT lead_email,
           argMin(source, (event_ms, signal_id)) AS first_source, argMin(event, (event_ms, signal_id)) AS first_event, min(event_ms) AS first_ms,
           argMax(source, (event_ms, signal_id)) AS last_source, argMax(event, (event_ms, signal_id)) AS last_event, max(event_ms) AS last_ms,
           count() AS signals, countIf(attributed_by = 'rehydrated') AS anonymous_before
    FROM signals_hot
    WHERE org_id = {org:String}
    GROUP BY lead_email
)
WHERE toDate(toDateTime(intDiv(first_ms, 1000))) BETWEEN {since:Date} AND {until:Date}
ORDER BY first_ms, lead_email
