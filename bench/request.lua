-- wrk script for the bench/ scripts (logins.py, jmap.py, dav.py, ...): one request, repeated.
--
-- Environment (set by the bench scripts):
--   BENCH_METHOD  GET, POST, PROPFIND, REPORT, ... (default GET)
--   BENCH_BODY    the request body (a POST always has one, empty or not)
--   BENCH_DEPTH   the WebDAV Depth header; none when empty
--   BENCH_CONTENT_TYPE  its Content-Type (default application/json)
--   BENCH_AUTH    the Authorization header ("Basic ..." or "Bearer ..."); none when empty
--   BENCH_COOKIE  the Cookie header; none when empty
--   BENCH_EXPECT  the status every response must have (default 200)
--
-- done() prints one line starting with "BENCH " of key=value pairs that the scripts parse;
-- latencies are in microseconds. "unexpected" counts responses whose
-- status differs from BENCH_EXPECT, "bad_status" is the first such status seen.

local method = os.getenv("BENCH_METHOD") or "GET"
wrk.method = method
local body = os.getenv("BENCH_BODY") or ""
-- WebDAV's PROPFIND and REPORT carry a body as POST does (bench/dav.py)
if method == "POST" or body ~= "" then
   wrk.body = body
   wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
end
local depth = os.getenv("BENCH_DEPTH")
if depth and depth ~= "" then
   wrk.headers["Depth"] = depth
end
local cookie = os.getenv("BENCH_COOKIE")
if cookie and cookie ~= "" then
   wrk.headers["Cookie"] = cookie
end
local auth = os.getenv("BENCH_AUTH")
if auth and auth ~= "" then
   wrk.headers["Authorization"] = auth
end
local expect = tonumber(os.getenv("BENCH_EXPECT") or "200")

-- setup() and done() run in the main Lua state, response() in each thread's own state:
-- the per-thread counters are globals that done() collects with thread:get().
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   unexpected = 0
   bad_status = 0
end

function response(status, headers, body)
   if status ~= expect then
      unexpected = unexpected + 1
      if bad_status == 0 then
         bad_status = status
      end
   end
end

function done(summary, latency, requests)
   local total_unexpected, first_bad = 0, 0
   for _, thread in ipairs(threads) do
      total_unexpected = total_unexpected + (thread:get("unexpected") or 0)
      local b = thread:get("bad_status") or 0
      if first_bad == 0 and b ~= 0 then
         first_bad = b
      end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d "
         .. "unexpected=%d bad_status=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests, summary.duration,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      total_unexpected, first_bad, e.connect, e.read, e.write, e.status, e.timeout))
end
