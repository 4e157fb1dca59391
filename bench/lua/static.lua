-- wrk: one fixed request; BENCH_METHOD (default GET) and BENCH_TOKEN (Authorization header,
-- reused on every request; optional).
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = token end
