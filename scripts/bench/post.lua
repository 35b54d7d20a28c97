-- wrk script: POST one signal per request (the body of seed 000's curl example).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email": "test@example.com", "event": "test", "properties": {"page": "/pricing"}}'
