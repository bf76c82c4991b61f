-- One wrk scenario, configured from the environment by bench/run.py:
--   BENCH_TOKEN   bearer token sent with every request (empty: none)
--   BENCH_METHOD  GET or POST
--   BENCH_PATHS   file with one path per line; each wrk thread walks its own share in order
--                 (so review ids are never reused) and wraps around at the end
--   BENCH_BODY    request body for POST
--   BENCH_RESULT  file the summary is written to, as JSON
local token = os.getenv("BENCH_TOKEN") or ""
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local result_file = os.getenv("BENCH_RESULT")

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  local all = {}
  for line in io.lines(os.getenv("BENCH_PATHS")) do
    if line ~= "" then table.insert(all, line) end
  end
  local stride = tonumber(os.getenv("BENCH_THREADS") or "1")
  paths = {}
  for i = thread_index + 1, #all, stride do table.insert(paths, all[i]) end
  if #paths == 0 then paths = all end
  position = 0
  headers = {["Content-Type"] = "application/json"}
  if token ~= "" then headers["Authorization"] = "Bearer " .. token end
end

-- wrk itself counts only 4xx and 5xx as errors; a redirect must not pass for a 200 either.
non_2xx = 0

function response(status, headers, body)
  if status < 200 or status > 299 then non_2xx = non_2xx + 1 end
end

function request()
  position = position % #paths + 1
  return wrk.format(method, paths[position], headers, body)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  local non_2xx = 0
  for _, thread in ipairs(threads) do non_2xx = non_2xx + thread:get("non_2xx") end
  local out = string.format(
    '{"requests": %d, "seconds": %.3f, "rps": %.1f, "p50_ms": %.2f, "p99_ms": %.2f, ' ..
    '"max_ms": %.2f, "non_2xx": %d, "socket_errors": %d}',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    non_2xx, errors.connect + errors.read + errors.write + errors.timeout)
  local f = io.open(result_file, "w")
  f:write(out)
  f:close()
end
