-- POST one fixed JSON body; stop sending after a time window (or a request budget) but let
-- every request in flight finish, so nothing is abandoned at the end (each connection goes
-- idle after its last response; the harness stops wrk once all are). Prints one machine-readable line, BENCH_JSON {...}.
local ffi = require("ffi")
pcall(ffi.cdef, [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_AUTH")

local window = tonumber(os.getenv("BENCH_WINDOW"))
local budget = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "0")
local connections = tonumber(os.getenv("BENCH_CONNECTIONS"))

-- per-thread globals, read back in done() with thread:get()
started = 0
stop_at = 0
sent = 0
last_done = 0
idle = 0

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  started = now()
  stop_at = started + window
end

-- wrk calls delay() before every request a connection sends (its first one included)
function delay()
  local t = now()
  if t < stop_at and (budget <= 0 or sent < budget) then
    sent = sent + 1
    return 0
  end
  last_done = t
  idle = idle + 1
  if idle == connections then
    -- every connection is idle, nothing is in flight: tell the harness, which stops wrk (SIGINT)
    local f = io.open(os.getenv("BENCH_DRAINED_FILE"), "w")
    if f then
      f:write("drained\n")
      f:close()
    end
  end
  return 3600000
end

function done(summary, latency, requests)
  local first, last, idle_total = math.huge, 0, 0
  for _, thread in ipairs(threads) do
    first = math.min(first, thread:get("started"))
    last = math.max(last, thread:get("last_done"))
    idle_total = idle_total + thread:get("idle")
  end
  local elapsed = 0
  if last > 0 then elapsed = last - first end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"max":%d,"mean":%.1f,"stdev":%.1f,"p50":%d,"p90":%d,"p99":%d},' ..
    '"elapsed_s":%.6f,"idle_connections":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.max, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    elapsed, idle_total))
end
