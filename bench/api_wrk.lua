-- wrk script of bench/api.sh: the request from the environment, one JSON line at the end.
--
--   wrk -s bench/api_wrk.lua URL                                   GET URL
--   API_WRK_METHOD=POST API_WRK_BODY='{"runbook":"x","params":{}}' wrk -s bench/api_wrk.lua URL
--   API_WRK_BATCH=10000 API_WRK_RUNBOOK=x wrk -s bench/api_wrk.lua URL/api/v1/runs/batch
--       (body {"runs":[10000 x {"runbook":"x","params":{}}]}, POST)
--
-- With AUTOMAN_TOKEN set (bench/api.sh sets it after logging in), every request carries
-- `Authorization: Bearer $AUTOMAN_TOKEN`.
--
-- The JSON line (starting with {"kind":"wrk") has requests per second, runs per second
-- (requests x API_WRK_BATCH, or requests), the error counts (status = answers >= 400) and
-- wrk's latency percentiles (closed loop: they start when a connection gets to send).
local batch = tonumber(os.getenv("API_WRK_BATCH") or "0")
local method = os.getenv("API_WRK_METHOD") or (batch > 0 and "POST" or "GET")
local body = os.getenv("API_WRK_BODY")
if batch > 0 then
  local one = '{"runbook":"' .. (os.getenv("API_WRK_RUNBOOK") or "host-info") .. '","params":{}}'
  local t = {}
  for i = 1, batch do t[i] = one end
  body = '{"runs":[' .. table.concat(t, ",") .. ']}'
end
wrk.method = method
local token = os.getenv("AUTOMAN_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
if body then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local s = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    '{"kind":"wrk","method":"%s","requests":%d,"seconds":%.3f,"rps":%.1f,"runs_per_s":%.1f,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
    '"errors_timeout":%d,"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    method, summary.requests, s, summary.requests / s,
    summary.requests * (batch > 0 and batch or 1) / s, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
