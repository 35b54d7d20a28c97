-- Rehydration (sink/src/store.rs): every cold signal of some identified visitors, in a range of
-- months, written as a hot row of each visitor's lead, attributed `rehydrated`; one statement for
-- all of a batch's links. Idempotent: a signal already hot under the lead is not written again, so
-- a replayed batch doubles nothing. Binds, in order: the visitors' keys (org_id, a NUL character,
-- anonymous_id) and their leads' emails (two arrays of the same length), written_ms, the org ids,
-- the anonymous ids, the keys again, first and last month (toYYYYMM) of the range, the org ids and
-- the emails again.
INSERT INTO signals_hot (org_id, lead_email, signal_id, anonymous_id, user_id, source, kind, event,
                         attributed_by, mapped, rules, content_hash, received_ms, event_ms, fields, payload, written_ms)
SELECT org_id, transform(concat(org_id, '\0', anonymous_id), ?, ?, '') AS lead, signal_id, anonymous_id, user_id,
       source, kind, event, 'rehydrated', mapped, rules, content_hash, received_ms, event_ms, fields, payload, ?
FROM signals_cold
WHERE org_id IN (SELECT arrayJoin(?)) AND anonymous_id IN (SELECT arrayJoin(?))
  AND concat(org_id, '\0', anonymous_id) IN (SELECT arrayJoin(?))
  AND toYYYYMM(event_date) BETWEEN ? AND ?
  AND (org_id, lead, signal_id) NOT IN (
      SELECT org_id, lead_email, signal_id FROM signals_hot
      WHERE org_id IN (SELECT arrayJoin(?)) AND lead_email IN (SELECT arrayJoin(?)))
