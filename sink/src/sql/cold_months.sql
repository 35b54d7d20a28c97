-- The months (toYYYYMM) the cold signals of some visitors of one org fall in, in order
-- (sink/src/store.rs), to rehydrate a long history a range of months at a time. Binds: org_id,
-- the visitors' anonymous ids (an array).
SELECT DISTINCT toYYYYMM(event_date) AS month
FROM signals_cold
WHERE org_id = ? AND anonymous_id IN (SELECT arrayJoin(?))
ORDER BY month
