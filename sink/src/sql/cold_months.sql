-- The months (toYYYYMM) a visitor's cold signals fall in, in order (sink/src/store.rs), to
-- rehydrate a long history a range of months at a time. Binds: org_id, anonymous_id.
SELECT DISTINCT toYYYYMM(event_date) AS month
FROM signals_cold
WHERE org_id = ? AND anonymous_id = ?
ORDER BY month
