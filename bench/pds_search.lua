-- wrk script: a PDS search (family, given, date of birth) for a random patient of the store.
-- Queries ("family|given|yyyy-mm-dd" lines) and the token come from files written by bench/run.py.
local queries = {}
for line in io.lines(os.getenv("BENCH_QUERIES")) do queries[#queries + 1] = line end
local token = io.open(os.getenv("BENCH_TOKEN")):read("*l")
math.randomseed(os.time())

local function uuid()
  return string.gsub("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", "[xy]", function(c)
    local v = (c == "x") and math.random(0, 15) or math.random(8, 11)
    return string.format("%x", v)
  end)
end

local function escape(s)
  return (string.gsub(s, "[^%w%-_%.]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

request = function()
  local family, given, born = string.match(queries[math.random(#queries)], "([^|]*)|([^|]*)|(.*)")
  return wrk.format("GET", "/personal-demographics/FHIR/R4/Patient?family=" .. escape(family) ..
    "&given=" .. escape(given) .. "&birthdate=eq" .. born, {
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
