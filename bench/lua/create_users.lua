-- POST /v1/users with a unique username per request (BENCH_RUN_ID, thread, counter),
-- authenticated with the API token BENCH_API_TOKEN.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local n = 0
local headers
local run, pw

function init(args)
  common_init()
  run = os.getenv("BENCH_RUN_ID") or tostring(os.time())
  pw = os.getenv("BENCH_PASSWORD") or "benchpassword1"
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_TOKEN") or ""),
  }
end

function request()
  n = n + 1
  local name = "n" .. run .. "t" .. tid .. "i" .. n
  return wrk.format("POST", "/v1/users", headers,
    '{"username":"' .. name .. '","password":"' .. pw ..
    '","email":"' .. name .. '@bench.invalid","admin":false}')
end
