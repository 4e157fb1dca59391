-- GET /identity with a different per-request token each time, cycling through the file
-- named by env BENCH_TOKENS (one "Nostr ..." header value per line).
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "/identity", { ["Authorization"] = tokens[i] })
end
