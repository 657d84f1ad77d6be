-- wrk script: GET a random patient by NHS number with a bearer token and a fresh X-Request-ID.
-- NHS numbers and the token come from files written by bench/run.py.
local numbers = {}
for line in io.lines(os.getenv("BENCH_NUMBERS")) do numbers[#numbers + 1] = line end
local token = io.open(os.getenv("BENCH_TOKEN")):read("*l")
math.randomseed(os.time())

local function uuid()
  return string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end)
end

request = function()
  local n = numbers[math.random(#numbers)]
  return wrk.format("GET", "/personal-demographics/FHIR/R4/Patient/" .. n, {
    ["Authorization"] = "Bearer " .. token,
    ["X-Request-ID"] = uuid(),
  })
end

done = function(summary, latency, requests)
  io.write(string.format(
    "JSON{\"requests\":%d,\"duration_us\":%d,\"errors\":%d,\"non2xx\":%d," ..
    "\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f}\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000))
end
