-- Shared by every bench script: per-thread status counting and one parseable
-- summary line ("BENCH_RESULT {json}") printed by done().
-- Environment: BENCH_WRK_THREADS (threads, for key partitioning),
--              BENCH_COUNT_STATUS=0 to skip response() (wrk then only counts >= 400).

local threads = {}
local next_tid = 1

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

statuses = {}
responses = 0
stop_after = 0 -- >0: stop this thread once that many responses arrived

function common_init()
  tid = tid or 1
  nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "1") or 1
  if os.getenv("BENCH_COUNT_STATUS") == "0" and os.getenv("BENCH_WALK_ONCE") ~= "1" then
    response = nil
  end
end

function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
  responses = responses + 1
  if stop_after > 0 and responses >= stop_after then
    stop_after = 0
    local dir = os.getenv("BENCH_DONE_DIR")
    if dir then
      local f = io.open(dir .. "/done." .. tid, "w")
      if f then f:write("done\n"); f:close() end
    end
    wrk.thread:stop()
  end
end

-- Requests prepared in init() and sent in turn: a script sets `request = next_request`.
reqs = {}
req_idx = 0

function next_request()
  req_idx = req_idx + 1
  if req_idx > #reqs then req_idx = 1 end
  return reqs[req_idx]
end

-- One request per key of this thread's slice of BENCH_KEYFILE, made by make(key);
-- BENCH_WALK_ONCE=1 stops the thread after one pass.
function requests_for_keys(make)
  for i, k in ipairs(read_slice(os.getenv("BENCH_KEYFILE"))) do
    reqs[i] = make(k)
  end
  if os.getenv("BENCH_WALK_ONCE") == "1" then
    stop_after = #reqs
  end
  if #reqs == 0 then
    reqs[1] = wrk.format("GET", "/healthz")
  end
end

-- read a file of one key per line; return this thread's slice
function read_slice(path)
  local keys = {}
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    if #line > 0 then keys[#keys + 1] = line end
  end
  f:close()
  local limit = tonumber(os.getenv("BENCH_KEY_LIMIT") or "0") or 0
  local n = #keys
  if limit > 0 and limit < n then n = limit end
  local first = math.floor((tid - 1) * n / nthreads) + 1
  local last = math.floor(tid * n / nthreads)
  local slice = {}
  for i = first, last do slice[#slice + 1] = keys[i] end
  return slice
end

function done(summary, latency, requests)
  local st = {}
  local counted = false
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do
        st[k] = (st[k] or 0) + v
        counted = true
      end
    end
  end
  local parts = {}
  for k, v in pairs(st) do parts[#parts + 1] = string.format('"%s":%d', k, v) end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d},' ..
    '"status":{%s},"status_counted":%s}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9),
    table.concat(parts, ","), tostring(counted)))
end
