-- GET /identity with one reused session-style token (env BENCH_TOKEN).
wrk.method = "GET"
wrk.path = "/identity"
wrk.headers["Authorization"] = os.getenv("BENCH_TOKEN")
