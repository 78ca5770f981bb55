# shellcheck shell=bash
# Helpers shared by bench/run, bench/compare_original.sh and bench/janitor_bench.sh.
# Sourced, not executed. Every process started here is recorded and stopped by bench_cleanup.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
export BENCH_LUA_DIR="$BENCH_DIR/lua"

: "${BENCH_CONNECTIONS:=64}"
: "${BENCH_THREADS:=2}"
: "${BENCH_DURATION:=15s}"
: "${BENCH_PORT:=18471}"
: "${BENCH_PASSWORD:=benchpassword1}"
: "${BENCH_PG_MAX_CONNECTIONS:=300}"
: "${BENCH_PG_SHARED_BUFFERS:=512MB}"
: "${BENCH_KEEP_TMP:=0}"
export BENCH_PASSWORD
# The daemon binary: the release build of this checkout, or BENCH_BIN (then nothing is built;
# not PGUSERS_BIN: the daemon refuses unknown PGUSERS_* variables in its environment).
BENCH_BIN_DEFAULT="$REPO_DIR/target/release/pgusers"
: "${BENCH_BIN:=$BENCH_BIN_DEFAULT}"

BENCH_TMP=""
PG_PID=""
PG_SOCKDIR=""
PG_OWNED=0
DAEMON_PID=""
DAEMON_LOG=""
BENCH_API_TOKEN="bench-token-$RANDOM$RANDOM$RANDOM"
export BENCH_API_TOKEN
declare -a BENCH_BG_PIDS=()

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

bench_tmp() {
    if [[ -z "$BENCH_TMP" ]]; then
        BENCH_TMP="$(mktemp -d /tmp/pgusers-bench.XXXXXX)"
        chmod 755 "$BENCH_TMP"
    fi
}

bench_cleanup() {
    local rc=$?
    set +e
    local p
    for p in "${BENCH_BG_PIDS[@]}"; do
        kill "$p" 2>/dev/null
    done
    daemon_stop
    if [[ -n "$PG_PID" ]]; then
        # runuser does not pass signals on: signal the postmaster itself (fast shutdown)
        local pm
        pm="$(head -1 "$PG_SOCKDIR/data/postmaster.pid" 2>/dev/null)"
        [[ -n "$pm" ]] && kill -INT "$pm" 2>/dev/null
        kill -INT "$PG_PID" 2>/dev/null
        local _
        for _ in $(seq 1 100); do
            kill -0 "$PG_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$PG_PID" 2>/dev/null
        PG_PID=""
    fi
    if [[ -n "$BENCH_TMP" && "$BENCH_KEEP_TMP" != 1 ]]; then
        rm -rf "$BENCH_TMP"
    elif [[ -n "$BENCH_TMP" ]]; then
        log "kept $BENCH_TMP"
    fi
    return "$rc"
}

ensure_wrk() {
    if ! command -v wrk >/dev/null 2>&1; then
        log "installing wrk (apt)"
        if [[ $(id -u) -ne 0 ]]; then die "wrk missing and not root: apt-get install wrk"; fi
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    fi
}

ensure_pg_client() {
    command -v psql >/dev/null 2>&1 || die "psql not found (apt-get install postgresql-client)"
}

build_release() {
    if [[ "$BENCH_BIN" != "$BENCH_BIN_DEFAULT" ]]; then
        [[ -x "$BENCH_BIN" ]] || die "BENCH_BIN=$BENCH_BIN is not an executable"
        log "using $BENCH_BIN (not built)"
        return
    fi
    if [[ "${BENCH_SKIP_BUILD:-0}" == 1 && -x "$REPO_DIR/target/release/pgusers" ]]; then
        return
    fi
    log "cargo build --release"
    (cd "$REPO_DIR" && cargo build --release --quiet) || die "cargo build --release failed"
    [[ -x "$REPO_DIR/target/release/pgusers" ]] || die "no target/release/pgusers after build"
}

as_pg_user() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# Start a throwaway PostgreSQL on a Unix socket, or use PGUSERS_BENCH_DATABASE_URL.
# Sets BENCH_DB_URL (daemon database) and PG_ADMIN_CONN (a libpq string for dbname=postgres).
pg_start() {
    ensure_pg_client
    bench_tmp
    if [[ -n "${PGUSERS_BENCH_DATABASE_URL:-}" ]]; then
        BENCH_DB_URL="$PGUSERS_BENCH_DATABASE_URL"
        PG_ADMIN_CONN="$PGUSERS_BENCH_DATABASE_URL"
        PG_OWNED=0
        log "using PGUSERS_BENCH_DATABASE_URL"
        return
    fi
    local bindir
    bindir="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -1)"
    [[ -x "$bindir/initdb" ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
    PG_SOCKDIR="$BENCH_TMP/pg"
    mkdir -p "$PG_SOCKDIR"
    if [[ $(id -u) -eq 0 ]]; then chown postgres: "$PG_SOCKDIR"; fi
    log "initdb ($bindir)"
    as_pg_user "$bindir/initdb" -D "$PG_SOCKDIR/data" -U postgres --auth=trust -E UTF8 \
        --no-sync >"$BENCH_TMP/initdb.log" 2>&1 || { cat "$BENCH_TMP/initdb.log" >&2; die "initdb failed"; }
    # shellcheck disable=SC2086 # BENCH_PG_OPTS is a list of options
    as_pg_user "$bindir/postgres" -D "$PG_SOCKDIR/data" -k "$PG_SOCKDIR" -c listen_addresses='' \
        -c max_connections="$BENCH_PG_MAX_CONNECTIONS" -c shared_buffers="$BENCH_PG_SHARED_BUFFERS" \
        -c log_min_messages=warning ${BENCH_PG_OPTS:-} >"$BENCH_TMP/postgres.log" 2>&1 &
    PG_PID=$!
    PG_OWNED=1
    local _
    for _ in $(seq 1 100); do
        if psql "host=$PG_SOCKDIR user=postgres dbname=postgres" -Atqc 'select 1' >/dev/null 2>&1; then
            break
        fi
        kill -0 "$PG_PID" 2>/dev/null || { cat "$BENCH_TMP/postgres.log" >&2; die "postgres exited"; }
        sleep 0.1
    done
    PG_ADMIN_CONN="host=$PG_SOCKDIR user=postgres dbname=postgres"
    pg_createdb pgusers
    BENCH_DB_URL="host=$PG_SOCKDIR user=postgres dbname=pgusers"
    log "postgres up (pid $PG_PID, socket $PG_SOCKDIR)"
}

# pg_createdb NAME: create a database on the throwaway server (no-op on an external URL).
pg_createdb() {
    psql "$PG_ADMIN_CONN" -Atqc "select 1 from pg_database where datname = '$1'" | grep -q 1 \
        || psql "$PG_ADMIN_CONN" -qc "create database $1" >/dev/null
}

# libpq string for another database on the same server (throwaway server only)
pg_conn_db() {
    if [[ "$PG_OWNED" == 1 ]]; then
        echo "host=$PG_SOCKDIR user=postgres dbname=$1"
    else
        echo "$BENCH_DB_URL"
    fi
}

# SQL on the daemon's tables (its schema, database.schema, default pgusers)
sql() { PGOPTIONS="-c search_path=${PGUSERS_DATABASE__SCHEMA:-pgusers_daemon}" psql "$BENCH_DB_URL" -v ON_ERROR_STOP=1 -Atq "$@"; }

# daemon_start [VAR=value ...]: start $BENCH_BIN serve with extra environment.
daemon_start() {
    bench_tmp
    DAEMON_LOG="$BENCH_TMP/daemon.$(date +%s%N).log"
    # shellcheck disable=SC2086 # BENCH_DAEMON_ARGS is a list of arguments
    env PGUSERS_CONNECTION_STRING="$BENCH_DB_URL" \
        PGUSERS_API_TOKENS="$BENCH_API_TOKEN" \
        PGUSERS_LISTEN="127.0.0.1:$BENCH_PORT" \
        PGUSERS_LOG__LEVEL="${BENCH_LOG_LEVEL:-warn}" \
        PGUSERS_COOKIE_SECURE=false \
        "$@" \
        "$BENCH_BIN" serve ${BENCH_DAEMON_ARGS:-} >"$DAEMON_LOG" 2>&1 &
    DAEMON_PID=$!
    local _
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$BENCH_PORT/readyz" 2>/dev/null; then
            log "daemon ready (pid $DAEMON_PID${1:+, $*})"
            return 0
        fi
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            tail -30 "$DAEMON_LOG" >&2
            DAEMON_PID=""
            die "daemon exited before /readyz"
        fi
        sleep 0.1
    done
    tail -30 "$DAEMON_LOG" >&2
    die "daemon not ready after 30 s"
}

daemon_stop() {
    if [[ -n "$DAEMON_PID" ]]; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        local _
        for _ in $(seq 1 100); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$DAEMON_PID" 2>/dev/null || true
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=""
    fi
}

daemon_rss_kb() {
    awk '/^VmRSS:/ {print $2}' "/proc/$DAEMON_PID/status"
}

api() { # api METHOD PATH [JSON]: curl with the API token; prints the body, fails on >= 400
    local m=$1 p=$2
    shift 2
    curl -fsS -X "$m" -H "Authorization: Bearer $BENCH_API_TOKEN" -H 'Content-Type: application/json' \
        "http://127.0.0.1:$BENCH_PORT$p" ${1:+--data "$1"}
}

# SQL expression for the bench key number I (an integer expression): base64url(sha256(seed)), 43 chars
key_expr() {
    echo "rtrim(translate(encode(sha256(convert_to('pgusers-bench-key-' || ($1)::text, 'UTF8')), 'base64'), '+/', '-_'), '=')"
}

# seed_users N: N users u1..uN sharing the password hash of one user created through the API
seed_users() {
    local n=$1 hash
    if ! sql -c "select 1 from users where username = 'bench_seed'" | grep -q 1; then
        api POST /v1/users "{\"username\":\"bench_seed\",\"password\":\"$BENCH_PASSWORD\",\"email\":\"bench_seed@bench.invalid\",\"admin\":false}" >/dev/null \
            || die "POST /v1/users failed (see $DAEMON_LOG)"
    fi
    hash="$(sql -c "select password_hash from users where username = 'bench_seed'")"
    [[ -n "$hash" ]] || die "no password hash for bench_seed"
    export BENCH_PASSWORD_HASH="$hash"
    local have
    have="$(sql -c "select count(*) from users where username ~ '^u[0-9]+\$'")"
    if (( have < n )); then
        log "seeding users u$((have + 1))..u$n"
        sql -c "insert into users (username, email, password_hash)
                select 'u' || i, 'u' || i || '@bench.invalid', \$h\$$hash\$h\$
                from generate_series($((have + 1)), $n) i"
    fi
}

# seed_sessions FROM TO NUSERS EXPIRES_SQL: sessions for bench keys FROM..TO, user u(1 + (i-1) % NUSERS).
# By default each expiry is now + TTL (10 days) minus a random part of the refresh interval
# (60 s), so that the expiry writes fall due spread over the next minute, as with real traffic,
# instead of all at once one refresh interval after seeding.
seed_sessions() {
    local from=$1 to=$2 nusers=$3
    local expires=${4:-"now() + interval '10 days' - random() * interval '${BENCH_REFRESH_SPREAD:-60} seconds'"}
    (( to >= from )) || return 0
    log "seeding sessions $from..$to"
    sql -c "insert into sessions (key_digest, userid, created_at, last_seen_at, expires_at)
            select sha256(convert_to($(key_expr g.i), 'UTF8')), u.userid, now(), now(), $expires
            from generate_series($from, $to) g(i)
            join users u on lower(u.username) = 'u' || (1 + (g.i - 1) % $nusers)"
    sql -c "analyze sessions" >/dev/null
}

# write_keys FROM TO FILE
write_keys() {
    sql -c "copy (select $(key_expr i) from generate_series($1, $2) i) to stdout" >"$3"
}

# run_wrk NAME SCRIPT PATH DURATION CONNECTIONS [VAR=value ...]: prints the BENCH_RESULT json
run_wrk() {
    local name=$1 script=$2 path=$3 dur=$4 conns=$5
    shift 5
    local threads=$BENCH_THREADS
    (( threads > conns )) && threads=$conns
    local out="$BENCH_TMP/wrk.$name.out"
    env BENCH_WRK_THREADS="$threads" "$@" \
        wrk -t "$threads" -c "$conns" -d "$dur" --timeout 10s --latency \
        -s "$BENCH_LUA_DIR/$script" "http://127.0.0.1:$BENCH_PORT$path" >"$out" 2>&1 || {
        cat "$out" >&2
        die "wrk $name failed"
    }
    local line
    line="$(grep '^BENCH_RESULT ' "$out" | tail -1 | cut -d' ' -f2-)"
    [[ -n "$line" ]] || { cat "$out" >&2; die "no result from wrk $name"; }
    echo "$line"
}

# db_xacts: committed + rolled back transactions of the daemon's database so far
db_xacts() {
    sql -c "select xact_commit + xact_rollback from pg_stat_database where datname = current_database()"
}

venv_python() { # venv_python DIR PACKAGES...: create a venv (once) and install packages
    local dir=$1
    shift
    if [[ ! -x "$dir/bin/python" ]]; then
        python3 -m venv "$dir" >/dev/null
    fi
    "$dir/bin/pip" install -q --disable-pip-version-check "$@" >/dev/null
    echo "$dir/bin/python"
}

# run_wrk_walk NAME SCRIPT PATH CONNECTIONS [VAR=value ...]: send every key of BENCH_KEYFILE once
# (each thread stops after its slice; wrk itself sleeps its whole -d, so it is interrupted
# with SIGINT once every thread has reported done). Prints the BENCH_RESULT json.
run_wrk_walk() {
    local name=$1 script=$2 path=$3 conns=$4
    shift 4
    local threads=$BENCH_THREADS
    (( threads > conns )) && threads=$conns
    local out="$BENCH_TMP/wrk.$name.out" done_dir="$BENCH_TMP/walk.$name"
    rm -rf "$done_dir"
    mkdir -p "$done_dir"
    env BENCH_WRK_THREADS="$threads" BENCH_WALK_ONCE=1 BENCH_DONE_DIR="$done_dir" "$@" \
        wrk -t "$threads" -c "$conns" -d "${BENCH_WALK_MAX:-1800s}" --timeout 10s \
        -s "$BENCH_LUA_DIR/$script" "http://127.0.0.1:$BENCH_PORT$path" >"$out" 2>&1 &
    local wpid=$!
    BENCH_BG_PIDS+=("$wpid")
    while kill -0 "$wpid" 2>/dev/null; do
        if (( $(find "$done_dir" -name 'done.*' | wc -l) >= threads )); then
            kill -INT "$wpid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    wait "$wpid" || true
    local line
    line="$(grep '^BENCH_RESULT ' "$out" | tail -1 | cut -d' ' -f2-)"
    [[ -n "$line" ]] || { cat "$out" >&2; die "no result from wrk walk $name"; }
    echo "$line"
}

# duration string (15s, 2m, 30) -> seconds
dur_secs() {
    local d=$1
    case "$d" in
        *ms) echo 1 ;;
        *s) echo "${d%s}" ;;
        *m) echo "$(( ${d%m} * 60 ))" ;;
        *h) echo "$(( ${d%h} * 3600 ))" ;;
        *) echo "$d" ;;
    esac
}

# The start of a bench script: clean up on exit (and on Ctrl-C), then wrk (unless --no-wrk),
# the release build, a scratch directory and the PostgreSQL server.
bench_begin() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  [[ "${1:-}" == --no-wrk ]] || ensure_wrk
  build_release
  bench_tmp
  pg_start
}
