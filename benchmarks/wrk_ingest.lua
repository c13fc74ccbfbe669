-- Serves pre-signed requests (written by benchmarks/ingest.py) to wrk, each exactly once, and
-- counts answers by status and the events they accepted. wrk stops with requests still in flight:
-- "sent" lets the caller account for them. Thread k reads file WRK_REQUESTS_FILE.k, so no two
-- threads share a nonce.
--
-- wrk starts each thread once its init has run, and starts its clock after the last one, so the
-- first threads send before wrk's duration begins, while later ones still read their files (work
-- on the same CPUs as the server). Each thread notes when it sent its first signed request and
-- read its last answer; done() reports the span over all threads (load_s). Each thread also counts
-- its answers per second of the clock, and done() reports the steady part of the run: the whole
-- seconds in which every thread was sending (steady_s), and the answers and accepted events of
-- those seconds.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } wrk_timeval;
int gettimeofday(wrk_timeval *tv, void *tz);
]]
local clock = ffi.new("wrk_timeval")
local function now_us()
  ffi.C.gettimeofday(clock, nil)
  return tonumber(clock.tv_sec) * 1e6 + tonumber(clock.tv_usec)
end

statuses = {}
accepted = 0
sent = 0
first_sent_us = 0
last_answer_us = 0
exhausted_us = 0
answers_by_second = {}
accepted_by_second = {}
local requests, threads = {}, {}
local next_index = 1
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(os.getenv("WRK_REQUESTS_FILE") .. "." .. thread_number, "rb"))
  while true do
    local header = file:read("*l")
    if not header then break end
    local url, nonce, timestamp, signature, batch, length = header:match("^(%S+) (%S+) (%S+) (%S+) (%S+) (%d+)$")
    local body = file:read(tonumber(length))
    file:read("*l")
    table.insert(requests, wrk.format("POST", url, {
      ["Content-Type"] = "application/json", ["X-Nonce"] = nonce, ["X-Timestamp"] = timestamp,
      ["X-Signature"] = signature, ["X-Batch-Size"] = batch, ["X-SDK-Version"] = "telemetry-kit-rust/0.3.0",
      ["X-Schema-Version"] = "1.0.0"}, body))
  end
  file:close()
end

-- WRK_DELAY_MS paces each connection (the half-load scenario); 0 sends as fast as answers come.
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "0")
if pause > 0 then
  function delay()
    return pause
  end
end

function request()
  local r = requests[next_index]
  if r == nil then
    -- Out of pre-signed requests: keep wrk busy with a harmless GET, reported as "exhausted".
    if exhausted_us == 0 then exhausted_us = now_us() end
    statuses["exhausted"] = (statuses["exhausted"] or 0) + 1
    return wrk.format("GET", "/health")
  end
  next_index = next_index + 1
  if sent == 0 then first_sent_us = now_us() end
  sent = sent + 1
  return r
end

function response(status, headers, body)
  local n = body:match('"accepted":(%d+)')
  -- A 200 without "accepted" answers the /health filler sent once the signed requests ran out.
  if status == 200 and not n then return end
  statuses[status] = (statuses[status] or 0) + 1
  last_answer_us = now_us()
  local second = math.floor(last_answer_us / 1e6)
  answers_by_second[second] = (answers_by_second[second] or 0) + 1
  if n then
    accepted = accepted + tonumber(n)
    accepted_by_second[second] = (accepted_by_second[second] or 0) + tonumber(n)
  end
end

function done(summary, latency, requests_summary)
  local totals, accepted_total, sent_total, first, last = {}, 0, 0, math.huge, 0
  -- The steady part: from the second after the last thread began sending to the second before
  -- the first one stopped (its last answer, or running out of signed requests).
  local all_sending, first_stopping = 0, math.huge
  for _, thread in ipairs(threads) do
    accepted_total = accepted_total + thread:get("accepted")
    sent_total = sent_total + thread:get("sent")
    if thread:get("sent") > 0 then first = math.min(first, thread:get("first_sent_us")) end
    last = math.max(last, thread:get("last_answer_us"))
    all_sending = math.max(all_sending, thread:get("first_sent_us"))
    local stopped = thread:get("exhausted_us")
    first_stopping = math.min(first_stopping, stopped > 0 and stopped or thread:get("last_answer_us"))
    for status, n in pairs(thread:get("statuses")) do
      totals[tostring(status)] = (totals[tostring(status)] or 0) + n
    end
  end
  local steady_from, steady_to = math.floor(all_sending / 1e6) + 1, math.floor(first_stopping / 1e6) - 1
  local steady_answers, steady_accepted = 0, 0
  for _, thread in ipairs(threads) do
    local answers, events = thread:get("answers_by_second"), thread:get("accepted_by_second")
    for second = steady_from, steady_to do
      steady_answers = steady_answers + (answers[second] or 0)
      steady_accepted = steady_accepted + (events[second] or 0)
    end
  end
  io.write("WRK_RESULT accepted=", accepted_total, " sent=", sent_total, " ")
  for status, n in pairs(totals) do io.write("status_", status, "=", n, " ") end
  io.write("steady_s=", math.max(steady_to - steady_from + 1, 0), " steady_answers=", steady_answers,
    " steady_accepted=", steady_accepted, " ")
  io.write(string.format("p50_ms=%.3f p99_ms=%.3f mean_ms=%.3f duration_s=%.3f load_s=%.3f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.mean / 1000,
    summary.duration / 1e6, math.max(last - first, 0) / 1e6))
end
