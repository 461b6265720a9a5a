-- (c) wrk script: GET /api/leads/{id} with the API key, cycling over the
-- seeded lead ids. Each thread stops after its share of the requests and
-- prints "thread done"; wrk itself sleeps for its whole -d duration, so
-- run.php sends it SIGINT once every thread is done, and done() prints one
-- JSON line: the requests, the time from the first request sent to the last
-- answer (wall clock, not wrk's duration, which includes that wait), wrk's
-- latency percentiles and its error counts.
--
-- Environment: BENCH_API_KEY, BENCH_LEAD_IDS (comma-separated),
-- BENCH_REQUESTS_PER_THREAD, BENCH_PATH_PREFIX (put before /api/leads/; the
-- URL's own path is not used by wrk.format).

local ffi = require("ffi")
ffi.cdef [[
   typedef struct { long tv_sec; long tv_usec; } bench_timeval;
   int gettimeofday(bench_timeval *tv, void *tz);
]]
local tv = ffi.new("bench_timeval")
local function now_us()
   ffi.C.gettimeofday(tv, nil)
   return tonumber(tv.tv_sec) * 1000000 + tonumber(tv.tv_usec)
end

local ids = {}
for id in string.gmatch(os.getenv("BENCH_LEAD_IDS") or "", "%d+") do
   ids[#ids + 1] = id
end
local per_thread = tonumber(os.getenv("BENCH_REQUESTS_PER_THREAD") or "0")
local headers = { ["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_KEY") or "") }
local prefix = (os.getenv("BENCH_PATH_PREFIX") or "") .. "/api/leads/"

-- Per thread (each thread runs this script in its own Lua state).
sent, answered, first_sent_us, last_answer_us = 0, 0, 0, 0

function request()
   if sent == 0 then
      first_sent_us = now_us()
   end
   sent = sent + 1
   return wrk.format("GET", prefix .. ids[(sent % #ids) + 1], headers)
end

function response(status, hdrs, body)
   answered = answered + 1
   if answered == per_thread then
      last_answer_us = now_us()
      io.write("thread done\n")
      io.flush()
      wrk.thread:stop()
   end
end

-- In the main state: the threads, for done().
local threads = {}
function setup(thread)
   threads[#threads + 1] = thread
end

function done(summary, latency, requests)
   local first, last, answers = nil, 0, 0
   for _, t in ipairs(threads) do
      local f = t:get("first_sent_us")
      if first == nil or f < first then first = f end
      last = math.max(last, t:get("last_answer_us"))
      answers = answers + t:get("answered")
   end
   local e = summary.errors
   io.write(string.format(
      '{"requests":%d,"answers":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
      summary.requests, answers, last - first, latency:percentile(50), latency:percentile(99), latency.mean,
      e.connect, e.read, e.write, e.status, e.timeout))
end
