-- wrk script: GET a random patient by NHS number with a bearer token and a fresh X-Request-ID.
-- NHS numbers and the token come from files written by bench/run.py.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "common.lua")
local numbers = {}
for line in io.lines(os.getenv("BENCH_NUMBERS")) do numbers[#numbers + 1] = line end
local token = io.open(os.getenv("BENCH_TOKEN")):read("*l")
math.randomseed(os.time())

request = function()
  local n = numbers[math.random(#numbers)]
  return wrk.format("GET", "/personal-demographics/FHIR/R4/Patient/" .. n, {
    ["Authorization"] = "Bearer " .. token,
    ["X-Request-ID"] = common.uuid(),
  })
end

done = function(summary, latency, requests)
  common.report(summary, latency)
end
