-- Rehydration (sink/src/store.rs): every cold signal of some visitors of one org, in a range of
-- months, written as a hot row of each visitor's lead, attributed `rehydrated`. Binds, in order:
-- the visitors' anonymous ids and their leads' emails (two arrays of the same length), written_ms,
-- org_id, the anonymous ids again, first and last month (toYYYYMM) of the range.
INSERT INTO signals_hot (org_id, lead_email, signal_id, anonymous_id, user_id, source, kind, event,
                         attributed_by, mapped, rules, content_hash, received_ms, event_ms, fields, payload, written_ms)
SELECT org_id, transform(anonymous_id, ?, ?, ''), signal_id, anonymous_id, user_id, source, kind, event, 'rehydrated',
       mapped, rules, content_hash, received_ms, event_ms, fields, payload, ?
FROM signals_cold
WHERE org_id = ? AND anonymous_id IN (SELECT arrayJoin(?)) AND toYYYYMM(event_date) BETWEEN ? AND ?
