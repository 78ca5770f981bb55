-- GET the URL given on the command line (e.g. /healthz), counting statuses.
dofile(os.getenv("BENCH_LUA_DIR") .. "/common.lua")

function init(args)
  common_init()
end
