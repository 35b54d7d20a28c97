-- The latest link of each of some visitors (sink/src/store.rs), for a batch's cold signals of
-- visitors identified before. Binds: the org ids, the anonymous ids, the visitors' keys (org_id,
-- a NUL character, anonymous_id), as arrays.
SELECT org_id, anonymous_id, argMax(email, linked_ms) AS email
FROM identities
WHERE org_id IN (SELECT arrayJoin(?)) AND anonymous_id IN (SELECT arrayJoin(?))
  AND concat(org_id, '\0', anonymous_id) IN (SELECT arrayJoin(?))
GROUP BY org_id, anonymous_id
