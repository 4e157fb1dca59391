-- wrk: GET <path> with a different Authorization token on every request, read from the file
-- BENCH_TOKENS (one per line), each used once. done() says how many were used; if the run
-- needed more than the file holds, tokens were reused and the result is flagged by run.sh.
local threads = {}
function setup(thread) table.insert(threads, thread) end

-- Globals (not locals): done() reads them from the thread with thread:get.
tokens, n, i, wrapped = {}, 0, 0, 0
function init(args)
  for line in io.lines(os.getenv("BENCH_TOKENS")) do
    if line ~= "" then n = n + 1; tokens[n] = line end
  end
end

function request()
  i = i + 1
  if i > n then i = 1; wrapped = wrapped + 1 end
  return wrk.format("GET", nil, { Authorization = tokens[i] })
end


function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    io.write(string.format("TOKENS used=%d of=%d wrapped=%d\n",
      t:get("i") + t:get("wrapped") * t:get("n"), t:get("n"), t:get("wrapped")))
  end
end
