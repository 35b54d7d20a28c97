-- The view fill.sql reads: slice [FIRST, FIRST + COUNT) of the synthetic signals.
CREATE VIEW bench_signals AS
SELECT i, v, k, org_id, concat('v-', toString(v)) AS anonymous_id, v % 3 = 0 AS identified,
       concat('lead-', toString(v), '@', org_id, '.example') AS lead_email,
       ['segment', 'hubspot', 'webhook', 'pixel'][v % 4 + 1] AS source,
       if(k = 5, 'identify', 'track') AS kind,
       ['Page Viewed', 'Pricing Page Viewed', 'Demo Requested', 'Form Submitted', 'Signed Up', 'Email Opened',
        'Ad Clicked', 'Webinar Joined'][(v + k) % 8 + 1] AS event,
       toUInt64(1767225600000) + ((v % 180) + k * 2) * 86400000 + (v % 86400) * 1000 AS event_ms,
       concat('{"event":"', event, '","i":', toString(i), '}') AS payload
FROM (SELECT number + FIRST AS i, i % VISITORS AS v, intDiv(i, VISITORS) AS k,
             if(v % 10 < 4, 'org-0', concat('org-', toString(1 + v % 99))) AS org_id
      FROM numbers(COUNT))
