-- Signals per day and source, hot and cold together, each counted once: a cold signal that was
-- rehydrated is in both tables, so count distinct signal ids.
SELECT event_date AS day, source, uniqExact(signal_id) AS signals
FROM (
    SELECT event_date, source, signal_id FROM signals_hot WHERE org_id = 'acme'
    UNION ALL
    SELECT event_date, source, signal_id FROM signals_cold WHERE org_id = 'acme'
)
GROUP BY day, source
ORDER BY day, source
