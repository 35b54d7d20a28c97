-- wrk script: POST the body in BODY_FILE with CONTENT_TYPE (and AUTHORIZATION when set): one
-- request = one batch of events.
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("CONTENT_TYPE")
local authorization = os.getenv("AUTHORIZATION")
if authorization and authorization ~= "" then
    wrk.headers["Authorization"] = authorization
end
wrk.body = f:read("*a")
f:close()
