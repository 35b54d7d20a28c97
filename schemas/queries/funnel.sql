-- A two-step funnel: visitors who did {first} and then {then} within {days} days, both in the
-- range, anonymous past included (a visitor is its anonymous id; a lead's signals without one
-- count as the lead's). Each signal once: cold rows, and hot rows not rehydrated.
-- Reads: signals_cold, signals_hot.
SELECT count() AS did_first, countIf(converted) AS then_did_second
FROM (
    SELECT arrayExists(a -> arrayExists(b -> b >= a AND b - a <= {days:UInt32} * 86400000, groupArrayIf(event_ms, event = {then:String})),
                       groupArrayIf(event_ms, event = {first:String})) AS converted,
           countIf(event = {first:String}) AS firsts
    FROM (
        SELECT anonymous_id AS visitor, event, event_ms
        FROM signals_cold
        WHERE org_id = {org:String} AND event_date BETWEEN {since:Date} AND {until:Date}
          AND event IN ({first:String}, {then:String}) AND anonymous_id != ''
        UNION ALL
        SELECT if(anonymous_id != '', anonymous_id, concat('lead:', lead_email)) AS visitor, event, event_ms
        FROM signals_hot
        WHERE org_id = {org:String} AND event_date BETWEEN {since:Date} AND {until:Date}
          AND event IN ({first:String}, {then:String}) AND attributed_by != 'rehydrated'
    )
    GROUP BY cityHash64(visitor)
)
WHERE firsts > 0
