-- wrk: a mix of every kind of request, round-robin, for the leak check under load
-- (bench/leak-check.sh): public routes, reused and fresh tokens, reads, writes, and the error
-- paths (401, 404, 405, 400/422, preflight). Env: BENCH_TOKEN (owner's session token),
-- BENCH_RELAY (a relay id of that owner), BENCH_TOKENS (file of fresh /identity tokens).
local token = os.getenv("BENCH_TOKEN")
local relay = os.getenv("BENCH_RELAY")
local json = { ["Content-Type"] = "application/json", Authorization = token }
local auth = { Authorization = token }
fresh, nfresh, i = {}, 0, 0

function init(args)
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    if line ~= "" then nfresh = nfresh + 1; fresh[nfresh] = line end
  end
end

local kinds = {
  function() return wrk.format("GET", "/healthz") end,
  function() return wrk.format("GET", "/identity", auth) end,
  function() return wrk.format("GET", "/identity", { Authorization = fresh[1 + i % nfresh] }) end,
  function() return wrk.format("GET", "/relays/" .. relay, auth) end,
  function() return wrk.format("GET", "/relays?limit=20", auth) end,
  function() return wrk.format("POST", "/relays", json,
                                string.format('{"subdomain":"leak-%d","plan":"free"}', i)) end,
  function() return wrk.format("PUT", "/relays/" .. relay, json,
                                string.format('{"info_name":"name %d"}', i)) end,
  function() return wrk.format("POST", "/relays/" .. relay .. "/deactivate", auth) end,
  function() return wrk.format("POST", "/relays/" .. relay .. "/activate", auth) end,
  function() return wrk.format("GET", "/nope", auth) end,
  function() return wrk.format("DELETE", "/identity", auth) end,
  function() return wrk.format("GET", "/identity", { Authorization = "Nostr bm90IGEgdG9rZW4=" }) end,
  function() return wrk.format("POST", "/relays", json, '{"subdomain":"www","plan":"free"}') end,
  function() return wrk.format("POST", "/relays", json, '{"subdomain":') end,
  function() return wrk.format("OPTIONS", "/relays", { Origin = "https://app.example" }) end,
  function() return wrk.format("GET", "/plans") end,
  function() return wrk.format("GET", "/invoices", auth) end,
  function() return wrk.format("GET", "/activity?limit=5", auth) end,
  function() return wrk.format("GET", "/tenants/" .. string.rep("0", 64), auth) end,
}

function request()
  i = i + 1
  return kinds[1 + i % #kinds]()
end
