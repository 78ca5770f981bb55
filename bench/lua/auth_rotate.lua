-- Forward auth: GET /v1/auth with "Authorization: Bearer <key>", rotating over the
-- keys in BENCH_KEYFILE (one per line). Each wrk thread walks its own slice.
-- BENCH_KEY_LIMIT=N: use only the first N keys.
-- BENCH_WALK_ONCE=1: every key is sent once, then the thread stops (cache warm-up).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  common_init()
  local path = os.getenv("BENCH_AUTH_PATH") or "/v1/auth"
  requests_for_keys(function(k)
    return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. k })
  end)
end

request = next_request
