-- wrk script for bench/inbound_rate.py: every request is a different pre-signed text.
-- Arguments: the requests file (one "signature<TAB>urlencoded form" per line), the number
-- of wrk threads. Thread k sends lines k, k+N, k+2N... once each; a thread that runs out
-- starts again from its first line and counts the wrap, which the harness reports (a
-- repeated MessageSid is a Twilio retry, cheaper than a new text, and would flatter us).
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  requests_ = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == id then
      local signature, body = line:match("^([^\t]*)\t(.*)$")
      requests_[#requests_ + 1] = wrk.format("POST", "/sms/inbound", {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = signature,
      }, body)
    end
    i = i + 1
  end
  position = 0
  wraps = 0
end

function request()
  position = position + 1
  if position > #requests_ then
    position = 1
    wraps = wraps + 1
  end
  return requests_[position]
end

function done(summary, latency, requests)
  local wrapped = 0
  for _, thread in ipairs(threads) do
    wrapped = wrapped + (thread:get("wraps") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
    .. '"max_us": %d, "wraps": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    wrapped))
end
