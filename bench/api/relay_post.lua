-- POST /relays with a unique subdomain per request and one reused session-style token
-- (no payload tag, so the body may change). Subdomains: b<run id>-<counter>.
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"subdomain":"b%s-%d","plan":"free","info_name":"bench"}', run, n)
  return wrk.format("POST", "/relays", {
    ["Authorization"] = os.getenv("BENCH_TOKEN"),
    ["Content-Type"] = "application/json",
  }, body)
end
-- wrk reports "Non-2xx or 3xx responses" itself, so a failing run is visible.
