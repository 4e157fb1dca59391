-- wrk: GET <path> with a different Authorization token on every request, read from the file
-- BENCH_TOKENS (one per line), each used once. done() says how many were used; if the run
-- needed more than the file holds, tokens were reused and the result is flagged by run.sh.
-- Tokens are read from the file as they are needed, not loaded into a table: with 300,000
-- tokens in a Lua table, wrk's garbage collector paused the client for ~100 ms now and then
-- (seen against nginx too: p99 2.9 ms instead of 0.4 ms), which showed up as server latency.
local threads = {}
function setup(thread) table.insert(threads, thread) end

-- Globals (not locals): done() reads them from the thread with thread:get.
i, wrapped = 0, 0
local file

function init(args)
  file = assert(io.open(os.getenv("BENCH_TOKENS"), "r"))
end

local function next_token()
  local line = file:read("*l")
  while line == "" do line = file:read("*l") end
  if not line then
    wrapped = wrapped + 1
    file:seek("set", 0)
    return next_token()
  end
  return line
end

function request()
  i = i + 1
  return wrk.format("GET", nil, { Authorization = next_token() })
end

function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("TOKENS used=%d wrapped=%d\n", t:get("i"), t:get("wrapped")))
  end
end
