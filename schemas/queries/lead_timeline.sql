-- One lead's signals in event order, its anonymous past included: `rehydrated` signals are
-- those its visitors sent before they were identified.
-- Reads: signals_hot (one row per lead and signal: the sink writes each once).
SELECT event_ms, signal_id, source, kind, event, attributed_by, anonymous_id
FROM signals_hot
WHERE org_id = {org:String} AND lead_email = {lead:String}
  AND event_date BETWEEN {since:Date} AND {until:Date}
ORDER BY event_ms, signal_id
