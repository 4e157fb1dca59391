-- wrk: POST /relays with a reused session-style token (BENCH_TOKEN) and a unique subdomain
-- per request (BENCH_PREFIX-<thread>-<counter>), plan free. A tenant may have 3 free relays,
-- so with BENCH_TENANTS set the token is an admin's and each request names a tenant: three
-- requests per tenant, tenant (thread - 1) * 1000000 + n as 64 hex digits (bench_tenants in
-- bench/lib.sh inserts them), plus BENCH_TENANT_BASE (default 0) when a run must not reuse the
-- tenants of an earlier one on the same database.
-- tid is a global: setup() (main state) sets it in each thread's state.
local created = 0
tid = 0
function setup(thread) created = created + 1; thread:set("tid", created) end

local prefix = os.getenv("BENCH_PREFIX") or "b"
local tenants = os.getenv("BENCH_TENANTS")
local base = tonumber(os.getenv("BENCH_TENANT_BASE") or "0")
local i = 0
wrk.method = "POST"
wrk.headers["Authorization"] = os.getenv("BENCH_TOKEN")
wrk.headers["Content-Type"] = "application/json"

function request()
  i = i + 1
  local tenant = ""
  if tenants then
    tenant = string.format(',"tenant":"%064x"', base + (tid - 1) * 1000000 + math.floor((i + 2) / 3))
  end
  local body = string.format('{"subdomain":"%s-%d-%d","plan":"free"%s}', prefix, tid, i, tenant)
  return wrk.format(nil, "/relays", nil, body)
end
