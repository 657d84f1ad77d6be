-- wrk script: the Spine mix (bench/mix.py prepares its inputs; run with one wrk thread).
-- Shares (percent, in BENCH_SHARES order): PDS read, PDS search, PDS update, EPS step, MESH, other.
-- EPS steps follow each prescription through create -> release -> dispense -> claim, each
-- step LAG prescriptions behind the one before, so a step never overtakes the step it needs.
-- MESH alternates send, download and acknowledge of messages whose ids the sends returned.
local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "") .. "common.lua")

local function lines(name)
  local out = {}
  for line in io.lines(os.getenv(name)) do out[#out + 1] = line end
  return out
end

local numbers = lines("BENCH_NUMBERS")
local queries = lines("BENCH_QUERIES")
local updates = lines("BENCH_UPDATES")
local creates = lines("BENCH_EPS_CREATE")
local releases = lines("BENCH_EPS_RELEASE")
local dispenses = lines("BENCH_EPS_DISPENSE")
local claims = lines("BENCH_EPS_CLAIM")
local tracked = lines("BENCH_EPS_TRACKED")
local send_tokens = lines("BENCH_MESH_SEND_TOKENS")
local receive_tokens = lines("BENCH_MESH_RECEIVE_TOKENS")
local ods = lines("BENCH_ODS")
local gp = "Bearer " .. lines("BENCH_TOKEN")[1]
local pharmacist = "Bearer " .. lines("BENCH_PHARMACIST_TOKEN")[1]
local mesh_from, mesh_to = os.getenv("BENCH_MESH_FROM"), os.getenv("BENCH_MESH_TO")
local workflow = os.getenv("BENCH_MESH_WORKFLOW")

local cumulative, total = {}, 0
for share in string.gmatch(os.getenv("BENCH_SHARES"), "%d+") do
  total = total + tonumber(share)
  cumulative[#cumulative + 1] = total
end

local PDS = "/personal-demographics/FHIR/R4"
local EPS = "/electronic-prescriptions/FHIR/R4"
local LAG = 40
local eps_n, update_n, send_n, receive_n = 0, 0, 0, 0
local received = {}   -- message ids sent and not yet downloaded
local to_ack = {}     -- message ids downloaded and not yet acknowledged
local mesh_phase = 0
math.randomseed(os.time())

local function spine(method, path, token, body, extra)
  local headers = {["Authorization"] = token, ["X-Request-ID"] = common.uuid()}
  if body then headers["Content-Type"] = "application/fhir+json" end
  if extra then for k, v in pairs(extra) do headers[k] = v end end
  return wrk.format(method, path, headers, body)
end

local function read()
  return spine("GET", PDS .. "/Patient/" .. numbers[math.random(#numbers)], gp)
end

local function search()
  local q = queries[math.random(#queries)]
  local family, given, born = string.match(q, "([^|]*)|([^|]*)|([^|]*)")
  return spine("GET", PDS .. "/Patient?family=" .. family .. "&given=" .. given ..
    "&birthdate=eq" .. born, gp)
end

local function update()
  update_n = update_n + 1
  if update_n > #updates then return read() end
  local body = '{"patches":[{"op":"replace","path":"/gender","value":"' ..
    ((update_n % 2 == 0) and "male" or "female") .. '"}]}'
  return spine("PATCH", PDS .. "/Patient/" .. updates[update_n], gp, body,
    {["Content-Type"] = "application/json-patch+json", ["If-Match"] = 'W/"1"'})
end

local function eps()
  local step = eps_n % 4
  local index = math.floor(eps_n / 4) + 1
  eps_n = eps_n + 1
  local target = index - step * LAG
  -- Until the pipeline fills (and after the prepared prescriptions run out), a PDS read.
  if target < 1 or index > #creates then return read() end
  if step == 0 then return spine("POST", EPS .. "/$process-message", gp, creates[target]) end
  if step == 1 then return spine("POST", EPS .. "/Task/$release", pharmacist, releases[target]) end
  if step == 2 then
    return spine("POST", EPS .. "/$process-message", pharmacist, dispenses[target])
  end
  return spine("POST", EPS .. "/Claim", pharmacist, claims[target])
end

local function mesh()
  mesh_phase = (mesh_phase + 1) % 3
  -- A download's id is queued when its request is made, not when it is answered: acknowledge
  -- only LAG downloads later, so an acknowledgement never overtakes its download.
  if mesh_phase == 2 and #to_ack > LAG and receive_n < #receive_tokens then
    receive_n = receive_n + 1
    local id = table.remove(to_ack, 1)
    return wrk.format("PUT", "/messageexchange/" .. mesh_to .. "/inbox/" .. id ..
      "/status/acknowledged", {["Authorization"] = receive_tokens[receive_n],
      ["Accept"] = "application/vnd.mesh.v2+json"})
  end
  if mesh_phase == 1 and #received > 0 and receive_n < #receive_tokens then
    receive_n = receive_n + 1
    local id = table.remove(received, 1)
    to_ack[#to_ack + 1] = id
    return wrk.format("GET", "/messageexchange/" .. mesh_to .. "/inbox/" .. id,
      {["Authorization"] = receive_tokens[receive_n]})
  end
  send_n = send_n + 1
  if send_n > #send_tokens then return read() end
  return wrk.format("POST", "/messageexchange/" .. mesh_from .. "/outbox", {
    ["Authorization"] = send_tokens[send_n],
    ["Accept"] = "application/vnd.mesh.v2+json",
    ["Content-Type"] = "application/octet-stream",
    ["mex-From"] = mesh_from, ["mex-To"] = mesh_to, ["mex-WorkflowID"] = workflow,
    ["mex-LocalID"] = "bench-" .. send_n,
  }, string.rep("spine mix ", 102) .. "1234")
end

local function other()
  local kind = math.random(3)
  if kind == 1 then
    return spine("GET", "/spine-directory/FHIR/R4/Organization/" .. ods[math.random(#ods)], gp)
  end
  -- Track only prescriptions created LAG orders ago: a newer order may still be in flight.
  local created = math.min(#tracked, math.floor(eps_n / 4) - LAG)
  if kind == 2 and created >= 1 then
    -- A prescription id's check character may be '+', which a query string must encode.
    local id = string.gsub(tracked[math.random(created)], "%+", "%%2B")
    return spine("GET", EPS .. "/Task?group-identifier=" .. id, gp)
  end
  return spine("GET", PDS .. "/Patient/" .. numbers[math.random(#numbers)] .. "/RelatedPerson",
    gp)
end

local kinds = {read, search, update, eps, mesh, other}

-- wrk calls request() once before the run to check what it returns (script_verify_request)
-- and throws that request away. Were it an EPS create, that prescription would never exist and
-- its release, dispense and claim would each fail with 404 (it happened in about one run in
-- four); were it a MESH send, its message would never be downloaded. So the first call is a read.
local verified = false

request = function()
  if not verified then
    verified = true
    return read()
  end
  local r = math.random(total)
  for i, bound in ipairs(cumulative) do
    if r <= bound then return kinds[i]() end
  end
  return read()
end

local failures = 0

response = function(status, headers, body)
  -- The first few failures, with their OperationOutcome, go into the result (bench/run.py).
  if status >= 300 and failures < 20 then
    failures = failures + 1
    io.write("FAIL " .. status .. " " .. string.gsub(string.sub(body or "", 1, 400), "\n", " ") .. "\n")
  end
  if status == 202 then
    local id = string.match(body, '"message_id":%s*"([^"]+)"')
    if id then received[#received + 1] = id end
  end
end

done = function(summary, latency, requests)
  common.report(summary, latency)
end
