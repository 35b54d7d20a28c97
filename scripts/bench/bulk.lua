-- wrk script: POST the NDJSON file named by BULK_FILE (one bulk request = many signals).
local f = assert(io.open(os.getenv("BULK_FILE"), "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
wrk.body = f:read("*a")
f:close()
