-- The rehydration invariant: cold signals of identified visitors that have no hot row for
-- their lead. Always 0 once the sink has caught up.
SELECT count()
FROM (
    SELECT org_id, anonymous_id, signal_id
    FROM signals_cold FINAL
    WHERE (org_id, anonymous_id) IN (SELECT org_id, anonymous_id FROM identities FINAL)
)
WHERE (org_id, signal_id) NOT IN (SELECT org_id, signal_id FROM signals_hot FINAL WHERE attributed_by != '')
