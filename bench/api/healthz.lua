-- GET /healthz (public): wrk -s bench/api/healthz.lua
wrk.method = "GET"
wrk.path = "/healthz"
