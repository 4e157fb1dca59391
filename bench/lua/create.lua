-- wrk: POST /relays with a reused session-style token (BENCH_TOKEN) and a unique subdomain
-- per request (BENCH_PREFIX-<thread>-<counter>), plan free.
-- tid is a global: setup() (main state) sets it in each thread's state.
local created = 0
tid = 0
function setup(thread) created = created + 1; thread:set("tid", created) end

local prefix = os.getenv("BENCH_PREFIX") or "b"
local i = 0
wrk.method = "POST"
wrk.headers["Authorization"] = os.getenv("BENCH_TOKEN")
wrk.headers["Content-Type"] = "application/json"

function request()
  i = i + 1
  local body = string.format('{"subdomain":"%s-%d-%d","plan":"free"}', prefix, tid, i)
  return wrk.format(nil, "/relays", nil, body)
end
