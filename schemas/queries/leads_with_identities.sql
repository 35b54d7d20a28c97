-- Each lead of one org with its traits and how many anonymous visitors resolved to it.
SELECT email, company, title, countIf(anonymous_id != '') AS visitors
FROM (SELECT email, company, title FROM leads FINAL WHERE org_id = 'acme')
ANY LEFT JOIN (SELECT email, anonymous_id FROM identities FINAL WHERE org_id = 'acme') USING (email)
GROUP BY email, company, title
ORDER BY email
