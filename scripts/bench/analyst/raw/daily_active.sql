-- daily_active over the signal tables instead of its rollup.
SELECT day, uniqHLL12If(anonymous_id, anonymous_id != '') AS visitors, uniqHLL12If(lead_email, lead_email != '') AS leads
FROM (
    SELECT event_date AS day, anonymous_id, lead_email FROM signals_cold
    WHERE org_id = {org:String} AND event_date BETWEEN {since:Date} AND {until:Date}
    UNION ALL
    SELECT event_date AS day, anonymous_id, lead_email FROM signals_hot
    WHERE org_id = {org:String} AND event_date BETWEEN {since:Date} AND {until:Date}
)
GROUP BY day
ORDER BY day
