-- Forward auth: GET /v1/auth with "Authorization: Bearer <key>", rotating over the
-- keys in BENCH_KEYFILE (one per line). Each wrk thread walks its own slice.
-- BENCH_KEY_LIMIT=N: use only the first N keys.
-- BENCH_WALK_ONCE=1: every key is sent once, then the thread stops (cache warm-up).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

local reqs = {}
local idx = 0

function init(args)
  common_init()
  local path = os.getenv("BENCH_AUTH_PATH") or "/v1/auth"
  for i, k in ipairs(read_slice(os.getenv("BENCH_KEYFILE"))) do
    reqs[i] = wrk.format("GET", path, { ["Authorization"] = "Bearer " .. k })
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
