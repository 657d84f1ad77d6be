-- wrk script: download then acknowledge each message id in turn (two requests per message),
-- each request with its own single-use NHSMESH token. Inputs come from bench/mesh.py.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "common.lua")
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local base = os.getenv("BENCH_PATH")
local i = 0
-- wrk calls request() once before the run to check it and throws the request away: that first
-- call must not advance the download/acknowledge sequence (see spine_mix.lua).
local verified = false

request = function()
  if not verified then
    verified = true
    return wrk.format("GET", base .. "/inbox/" .. ids[1], { ["Authorization"] = tokens[1] })
  end
  i = i + 1
  local n = math.floor((i - 1) / 2) % #ids + 1
  local headers = { ["Authorization"] = tokens[(i - 1) % #tokens + 1] }
  if i % 2 == 1 then
    return wrk.format("GET", base .. "/inbox/" .. ids[n], headers)
  end
  return wrk.format("PUT", base .. "/inbox/" .. ids[n] .. "/status/acknowledged", headers)
end

done = function(summary, latency, requests)
  common.report(summary, latency)
end
