-- wrk script: MESH sends of 1 KiB, each with its own single-use NHSMESH token.
-- Tokens (one per line), the sender, recipient and path come from bench/mesh.py.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "common.lua")
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local path = os.getenv("BENCH_PATH")
local recipient = os.getenv("BENCH_TO")
local i = 0
math.randomseed(os.time())
local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
local base = string.rep("x", 1024 - 16)

-- Real messages differ: a unique 16-character prefix keeps the content-addressed store honest.
local function body()
  local prefix = {}
  for k = 1, 16 do
    local r = math.random(#alphabet)
    prefix[k] = alphabet:sub(r, r)
  end
  return table.concat(prefix) .. base
end

request = function()
  i = i + 1
  if i > #tokens then i = 1 end -- out of tokens: replays, which the server must refuse (403)
  return wrk.format("POST", path, {
    ["Authorization"] = tokens[i],
    ["mex-To"] = recipient,
    ["mex-WorkflowID"] = "BENCH_WRK",
    ["Content-Type"] = "application/octet-stream",
    ["Accept"] = "application/vnd.mesh.v2+json",
  }, body())
end

done = function(summary, latency, requests)
  common.report(summary, latency)
end
