-- One bench scenario for wrk; bench/run.py passes it through the environment:
--   BENCH_METHOD     GET, POST or PATCH
--   BENCH_AUTH       the Authorization header (empty: none)
--   BENCH_BODY       the request body (empty: none)
--   BENCH_PATHS      newline-separated paths, cycled through
--   BENCH_PATCH_IDS  comma-separated account ids (PATCH mode: the i-th id goes with the i-th
--                    path; each account's name alternates between "Bench Patch <id> A" and B)
--   BENCH_THREADS    wrk's -t, so that the threads' request counters interleave
--   BENCH_NONCE      this wrk run's nonce (empty: none); with it, "{unique}" in the body is
--                    replaced in every request by "<nonce>-<thread id>-<thread's counter>"
-- done() prints one line "BENCH_JSON {...}" with the summary (latencies in microseconds).

local method = os.getenv("BENCH_METHOD") or "GET"
local auth = os.getenv("BENCH_AUTH") or ""
local body = os.getenv("BENCH_BODY") or ""

local function split(text, separator)
  local parts = {}
  for part in string.gmatch(text or "", "[^" .. separator .. "]+") do
    parts[#parts + 1] = part
  end
  return parts
end

local paths = split(os.getenv("BENCH_PATHS"), "\n")
local patch_ids = split(os.getenv("BENCH_PATCH_IDS"), ",")
local stride = tonumber(os.getenv("BENCH_THREADS") or "1") or 1
local headers = { ["Content-Type"] = "application/json" }
if auth ~= "" then
  headers["Authorization"] = auth
end
if body == "" then
  body = nil
end

-- A body with "{unique}" (and a nonce): split once here, joined around a new value per request.
local nonce = os.getenv("BENCH_NONCE") or ""
local body_head, body_tail
if nonce ~= "" and body then
  local from, to = string.find(body, "{unique}", 1, true)
  if from then
    body_head, body_tail = string.sub(body, 1, from - 1), string.sub(body, to + 1)
  end
end

local started_threads = 0
local counter = 0

function setup(thread)
  thread:set("tid", started_threads)
  started_threads = started_threads + 1
end

function request()
  local k = counter * stride + (tid or 0)
  counter = counter + 1
  local i = k % #paths
  if #patch_ids > 0 then
    local parity = math.floor(k / #patch_ids) % 2
    local name = "Bench Patch " .. patch_ids[i + 1] .. " " .. (parity == 0 and "A" or "B")
    return wrk.format(method, paths[i + 1], headers, '{"name": "' .. name .. '"}')
  end
  if body_head then
    local unique = nonce .. "-" .. (tid or 0) .. "-" .. (counter - 1)
    return wrk.format(method, paths[i + 1], headers, body_head .. unique .. body_tail)
  end
  return wrk.format(method, paths[i + 1], headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, "connect": %.0f, '
      .. '"read": %.0f, "write": %.0f, "status": %.0f, "timeout": %.0f, "p50_us": %.0f, '
      .. '"p90_us": %.0f, "p99_us": %.0f, "mean_us": %.1f, "max_us": %.0f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max
  ))
end
