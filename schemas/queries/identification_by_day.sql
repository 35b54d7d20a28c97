-- Per day: visitors seen for the first time, and visitors identified (their first signal
-- attributed to a lead).
-- Reads: visitors (rollup).
SELECT day, countIf(what = 'first_seen') AS first_seen, countIf(what = 'identified') AS identified
FROM (
    SELECT tupleElement(touch, 1) AS what, toDate(toDateTime(intDiv(tupleElement(touch, 2), 1000))) AS day
    FROM (
        SELECT minMerge(first_seen_ms) AS first_seen_ms, minMerge(identified_ms) AS identified_ms
        FROM visitors
        WHERE org_id = {org:String}
        GROUP BY cityHash64(anonymous_id)
    )
    ARRAY JOIN arrayFilter(t -> tupleElement(t, 2) != 0, [('first_seen', first_seen_ms), ('identified', identified_ms)]) AS touch
)
WHERE day BETWEEN {since:Date} AND {until:Date}
GROUP BY day
ORDER BY day
