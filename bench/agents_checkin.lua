-- wrk script for bench/agents.py: each connection checks in as the next of
-- many agent hosts (their tokens, one per line, in the file given after --),
-- and the figures are printed as one line the benchmark reads.
local threads = {}
local tokens = {}
local position = 0
local body = '{"agent_version": "1.0.0", "mode": "run", "interval": 300, "wait": 0, ' ..
             '"certificates": {"www.example.test": {"document_root": true}}}'

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  -- Threads start apart, so that no two ask as the same host at once.
  position = math.floor(id * #tokens / tonumber(args[2]))
end

function request()
  position = position % #tokens + 1
  return wrk.format("POST", "/agent/v1/checkin", {
    ["Authorization"] = "Bearer " .. tokens[position],
    ["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("FIGURES %d %d %.0f %.0f %.0f %.0f\n", summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
