-- Rehydration (sink/src/store.rs): every cold signal of a visitor in a range of months, written
-- as a hot row of the lead, attributed `rehydrated`. Binds, in order: lead email, written_ms,
-- org_id, anonymous_id, first and last month (toYYYYMM) of the range.
INSERT INTO signals_hot (org_id, lead_email, signal_id, anonymous_id, user_id, source, kind, event,
                         attributed_by, mapped, rules, content_hash, received_ms, event_ms, fields, payload, written_ms)
SELECT org_id, ?, signal_id, anonymous_id, user_id, source, kind, event, 'rehydrated', mapped, rules,
       content_hash, received_ms, event_ms, fields, payload, ?
FROM signals_cold
WHERE org_id = ? AND anonymous_id = ? AND toYYYYMM(event_date) BETWEEN ? AND ?
