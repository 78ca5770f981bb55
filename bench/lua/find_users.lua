-- GET /v1/users?username=uN (N random in 1..BENCH_FIND_USERS) with the API token.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  common_init()
  local n = tonumber(os.getenv("BENCH_FIND_USERS") or "1000")
  local m = math.min(n, 20000)
  local h = { ["Authorization"] = "Bearer " .. (os.getenv("BENCH_API_TOKEN") or "") }
  math.randomseed(os.time() + tid)
  for i = 1, m do
    reqs[i] = wrk.format("GET", "/v1/users?username=u" .. math.random(1, n), h)
  end
end

request = next_request
