-- wrk script: a PDS search (family, given, date of birth) for a random patient of the store.
-- Queries ("family|given|yyyy-mm-dd" lines) and the token come from files written by bench/run.py.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "common.lua")
local queries = {}
for line in io.lines(os.getenv("BENCH_QUERIES")) do queries[#queries + 1] = line end
local token = io.open(os.getenv("BENCH_TOKEN")):read("*l")
math.randomseed(os.time())

local function escape(s)
  return (string.gsub(s, "[^%w%-_%.]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

request = function()
  local family, given, born = string.match(queries[math.random(#queries)], "([^|]*)|([^|]*)|(.*)")
  return wrk.format("GET", "/personal-demographics/FHIR/R4/Patient?family=" .. escape(family) ..
    "&given=" .. escape(given) .. "&birthdate=eq" .. born, {
    ["Authorization"] = "Bearer " .. token,
    ["X-Request-ID"] = common.uuid(),
  })
end

done = function(summary, latency, requests)
  common.report(summary, latency)
end
