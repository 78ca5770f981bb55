-- POST /v1/sessions/check {"key": ...}, rotating over the keys in BENCH_KEYFILE.
-- Same options as auth_rotate.lua (BENCH_KEY_LIMIT, BENCH_WALK_ONCE).
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  common_init()
  local h = { ["Content-Type"] = "application/json" }
  requests_for_keys(function(k)
    return wrk.format("POST", "/v1/sessions/check", h, '{"key":"' .. k .. '"}')
  end)
end

request = next_request
