-- The months (toYYYYMM) the cold signals of some visitors fall in, in order (sink/src/store.rs),
-- to rehydrate a long history a range of months at a time. Binds: the org ids, the anonymous
-- ids, the visitors' keys (org_id, a NUL character, anonymous_id), as arrays.
SELECT DISTINCT toYYYYMM(event_date) AS month
FROM signals_cold
WHERE org_id IN (SELECT arrayJoin(?)) AND anonymous_id IN (SELECT arrayJoin(?))
  AND concat(org_id, '\0', anonymous_id) IN (SELECT arrayJoin(?))
ORDER BY month
