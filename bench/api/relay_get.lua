-- GET /relays/:id (env BENCH_RELAY) with one reused session-style token (env BENCH_TOKEN).
wrk.method = "GET"
wrk.path = "/relays/" .. os.getenv("BENCH_RELAY")
wrk.headers["Authorization"] = os.getenv("BENCH_TOKEN")
