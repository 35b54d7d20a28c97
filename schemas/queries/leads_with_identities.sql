-- Each lead of one org with its traits and how many anonymous visitors resolved to it. ALL, not
-- ANY: ANY LEFT JOIN keeps one visitor per lead, so a lead seen on two devices would count 1.
-- The joined subqueries are named: current ClickHouse requires it (joined_subquery_requires_alias).
SELECT email, company, title, countIf(anonymous_id != '') AS visitors
FROM (SELECT email, company, title FROM leads FINAL WHERE org_id = 'acme') AS lead
ALL LEFT JOIN (SELECT email, anonymous_id FROM identities FINAL WHERE org_id = 'acme') AS link USING (email)
GROUP BY email, company, title
ORDER BY email
