-- wrk script: POST /predict with bodies taken in turn from a file (one JSON object per line).
--
--   BODIES=/path/bodies.jsonl wrk -t2 -c32 -d30s -s bench/predict.lua http://127.0.0.1:8000/predict
--
-- RATE (requests/s, whole run) turns it into a constant-rate run: each connection waits
-- connections/RATE seconds between its requests (wrk's delay() hook), so the offered load is
-- RATE as long as responses come back faster than that interval. Latency percentiles are printed
-- as JSON on the last line (microseconds), for bench/bench_predict.py.

local bodies = {}
local counter = 0
local interval_ms = 0

function init(args)
  local path = os.getenv("BODIES")
  assert(path, "set BODIES to a file of JSON bodies, one per line")
  for line in io.lines(path) do
    if #line > 2 then bodies[#bodies + 1] = line end
  end
  assert(#bodies > 0, "no body in " .. path)
  local rate = tonumber(os.getenv("RATE") or "0")
  local connections = tonumber(os.getenv("CONNECTIONS") or "1")
  if rate > 0 then
    -- wrk splits connections evenly over threads; each connection paces itself.
    interval_ms = 1000.0 * connections / rate
  end
  -- a random first body; several wrk threads may draw the same one (the benchmark uses one thread)
  counter = math.random(#bodies)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  local key = os.getenv("API_KEY")
  if key and #key > 0 then wrk.headers["X-API-Key"] = key end
end

function request()
  counter = counter % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[counter])
end

function delay()
  if interval_ms > 0 then return interval_ms end
  return 0
end

-- STATUSES=1: count answers by status (503 and 200 apart), for bench/bench_faults.py.
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

if os.getenv("STATUSES") == "1" then
  n200, n503, nother = 0, 0, 0
  function response(status, headers, body)
    if status == 200 then n200 = n200 + 1
    elseif status == 503 then n503 = n503 + 1
    else nother = nother + 1 end
  end
end

function done(summary, latency, requests)
  local s200, s503, sother = 0, 0, 0
  for _, thread in ipairs(threads) do
    s200 = s200 + (thread:get("n200") or 0)
    s503 = s503 + (thread:get("n503") or 0)
    sother = sother + (thread:get("nother") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "status_200": %d, "status_503": %d, "status_other": %d}\n',
    summary.requests, summary.duration, errors.status, errors.connect, errors.read, errors.write,
    errors.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean, s200, s503, sother))
end
