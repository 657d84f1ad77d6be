-- wrk script: download then acknowledge each message id in turn (two requests per message),
-- each request with its own single-use NHSMESH token. Inputs come from bench/mesh.py.
-- Each id is used once. Past the last one every request asks for a message that does not exist
-- (404, counted as non-2xx): going round again would download acknowledged messages (410) and
-- acknowledge them again (200, and cheap), which is not receiving, so bench/mesh.py flags a run
-- that got that far instead of reporting its rate. The download and the acknowledgement of one
-- message go out at once on two connections: now and then the acknowledgement wins and the
-- download is answered 410 (non-2xx, so that message counts half).
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "common.lua")
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do
  if line ~= "" then ids[#ids + 1] = line end
end
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
  local n = math.floor((i - 1) / 2) + 1
  local headers = { ["Authorization"] = tokens[(i - 1) % #tokens + 1] }
  if n > #ids then
    return wrk.format("GET", base .. "/inbox/no-more-messages", headers)
  end
  if i % 2 == 1 then
    return wrk.format("GET", base .. "/inbox/" .. ids[n], headers)
  end
  return wrk.format("PUT", base .. "/inbox/" .. ids[n] .. "/status/acknowledged", headers)
end

done = function(summary, latency, requests)
  common.report(summary, latency)
end
