-- The rehydration invariant, for one org and a range of event days: cold signals of identified
-- visitors with no hot row under a lead. 0 once the sink has caught up; anything else is a
-- visitor whose anonymous past was not attributed.
-- Reads: signals_cold, identities, signals_hot (each row once, counted without FINAL).
SELECT count() AS unlinked
FROM signals_cold
WHERE org_id = {org:String} AND event_date BETWEEN {since:Date} AND {until:Date}
  AND anonymous_id IN (SELECT anonymous_id FROM identities WHERE org_id = {org:String})
  AND signal_id NOT IN (
      SELECT signal_id FROM signals_hot
      WHERE org_id = {org:String} AND event_date BETWEEN {since:Date} AND {until:Date} AND attributed_by = 'rehydrated')
