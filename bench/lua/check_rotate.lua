-- POST /v1/sessions/check {"key": ...}, rotating over the keys in BENCH_KEYFILE.
-- Same options as auth_rotate.lua (BENCH_KEY_LIMIT, BENCH_WALK_ONCE).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local reqs = {}
local idx = 0

function init(args)
  common_init()
  local h = { ["Content-Type"] = "application/json" }
  for i, k in ipairs(read_slice(os.getenv("BENCH_KEYFILE"))) do
    reqs[i] = wrk.format("POST", "/v1/sessions/check", h, '{"key":"' .. k .. '"}')
  end
  if os.getenv("BENCH_WALK_ONCE") == "1" then
    stop_after = #reqs
  end
  if #reqs == 0 then
    reqs[1] = wrk.format("GET", "/healthz")
  end
end

function request()
  idx = idx + 1
  if idx > #reqs then idx = 1 end
  return reqs[idx]
end
