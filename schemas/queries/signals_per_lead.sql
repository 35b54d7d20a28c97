-- Signals per lead of one org, with how each was attributed. FINAL collapses rows a replayed
-- batch wrote twice, so every signal counts once.
SELECT lead_email, count() AS signals, countIf(attributed_by = 'rehydrated') AS rehydrated,
       min(event_ms) AS first_event_ms, max(event_ms) AS last_event_ms
FROM signals_hot FINAL
WHERE org_id = 'acme'
GROUP BY lead_email
ORDER BY signals DESC, lead_email
