-- POST /v1/login rotating over users BENCH_USER_PREFIX1..N (N = BENCH_LOGIN_USERS)
-- with the password BENCH_PASSWORD.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  common_init()
  local n = tonumber(os.getenv("BENCH_LOGIN_USERS") or "300")
  local prefix = os.getenv("BENCH_USER_PREFIX") or "u"
  local pw = os.getenv("BENCH_PASSWORD") or "benchpassword1"
  local h = { ["Content-Type"] = "application/json" }
  for i = 1, n do
    reqs[i] = wrk.format("POST", "/v1/login", h,
      '{"username":"' .. prefix .. i .. '","password":"' .. pw .. '"}')
  end
  req_idx = math.floor((tid - 1) * n / nthreads)
end

request = next_request
