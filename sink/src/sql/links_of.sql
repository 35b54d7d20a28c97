-- The first link of each of some visitors (sink/src/store.rs), for a batch's cold signals of
-- visitors identified before: a visitor's anonymous signals belong to the lead it was first
-- identified as (a later re-identification moves only later signals). Binds: the org ids, the
-- anonymous ids, the visitors' keys (org_id, a NUL character, anonymous_id), as arrays.
SELECT org_id, anonymous_id, argMin(email, linked_ms) AS email
FROM identities
WHERE org_id IN (SELECT arrayJoin(?)) AND anonymous_id IN (SELECT arrayJoin(?))
  AND concat(org_id, '\0', anonymous_id) IN (SELECT arrayJoin(?))
GROUP BY org_id, anonymous_id
