-- Synthetic signals for make bench-analyst, as the sink writes them, generated inside ClickHouse.
-- Run once per slice by scripts/bench/analyst.sh, which replaces FIRST, COUNT and VISITORS.
-- Signal i belongs to visitor v = i % VISITORS and is its k-th signal (k = i / VISITORS). Four
-- in ten visitors are of org-0, the rest spread over org-1 … org-99. A third of the visitors are
-- identified by their 6th signal (k = 5): before it they were anonymous (cold rows, rehydrated
-- hot under the lead), after it every signal is hot ('identity'). Events are spread over about
-- 200 days from 2026-01-01, parts left as the inserts make them (no semicolon in these comments:
-- the script splits statements at each).
INSERT INTO signals_cold (org_id, lead_email, signal_id, anonymous_id, user_id, source, kind, event,
                          attributed_by, mapped, rules, content_hash, received_ms, event_ms, fields, payload, written_ms)
SELECT org_id, '', i, anonymous_id, '', source, kind, event, '', 0, [], hex(i), event_ms + 500, event_ms, '{}', payload, event_ms + 1000
FROM bench_signals
WHERE NOT identified OR k < 5;

INSERT INTO signals_hot (org_id, lead_email, signal_id, anonymous_id, user_id, source, kind, event,
                         attributed_by, mapped, rules, content_hash, received_ms, event_ms, fields, payload, written_ms)
SELECT org_id, lead_email, i, anonymous_id, '', source, kind, event, if(k < 5, 'rehydrated', if(k = 5, 'signal', 'identity')),
       0, [], hex(i), event_ms + 500, event_ms, '{}', payload, event_ms + 2000
FROM bench_signals
WHERE identified;

INSERT INTO identities (org_id, anonymous_id, email, name, company, title, signal_id, linked_ms)
SELECT org_id, anonymous_id, lead_email, '', '', '', i, event_ms + 1000
FROM bench_signals
WHERE identified AND k = 5;

INSERT INTO leads (org_id, email, name, company, title, first_signal_id, created_ms)
SELECT org_id, lead_email, '', '', '', i, event_ms + 1000
FROM bench_signals
WHERE identified AND k = 5;
