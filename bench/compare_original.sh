#!/usr/bin/env bash
# The original Python library (PyPI `pgusers`) against the pgusers daemon, same operations,
# same PostgreSQL, same client concurrency. See bench/README.md.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${COMPARE_USERS:=10000}"
: "${COMPARE_SESSIONS:=10000}"
: "${COMPARE_LOGIN_USERS:=300}"
: "${COMPARE_CONCURRENCY:=1,8}"
: "${COMPARE_DURATION:=5}"
: "${COMPARE_ORIG_INDEXED:=1}"   # also run the original with the indexes it lacks
: "${COMPARE_WRK:=1}"            # also measure the daemon with wrk at the same connection count

bench_begin

# ---- the original library, in its own database -------------------------------------------
VENV="$BENCH_TMP/venv"
log "venv: pip install pgusers psycopg2-binary argon2-cffi"
PY="$(venv_python "$VENV" pgusers psycopg2-binary argon2-cffi)"
ORIG_VERSION="$("$VENV/bin/pip" show pgusers 2>/dev/null | awk '/^Version:/ {print $2}')"
if [[ "$PG_OWNED" == 1 ]]; then
    pg_createdb pgusers_original
    ORIG_CONN="$(pg_conn_db pgusers_original)"
else
    die "compare_original.sh needs the throwaway server (unset PGUSERS_BENCH_DATABASE_URL)"
fi
ORIG_KEYS="$BENCH_TMP/orig-keys.txt"
common=(--users "$COMPARE_USERS" --sessions "$COMPARE_SESSIONS" --login-users "$COMPARE_LOGIN_USERS"
    --password "$BENCH_PASSWORD" --concurrency "$COMPARE_CONCURRENCY" --duration "$COMPARE_DURATION")
log "original $ORIG_VERSION: seeding $COMPARE_USERS users, $COMPARE_SESSIONS sessions (its own schema, created by UserSpace())"
"$PY" "$BENCH_DIR/original_bench.py" orig-seed --conn "$ORIG_CONN" --keys "$ORIG_KEYS" "${common[@]}"
log "original: measuring"
ORIG_JSON="$("$PY" "$BENCH_DIR/original_bench.py" orig --conn "$ORIG_CONN" --keys "$ORIG_KEYS" "${common[@]}")"
ORIG_IDX_JSON=null
if [[ "$COMPARE_ORIG_INDEXED" == 1 ]]; then
    log "original + indexes on sessions.key and users.username: measuring"
    "$PY" "$BENCH_DIR/original_bench.py" orig-seed --indexes --conn "$ORIG_CONN" --keys "$ORIG_KEYS" "${common[@]}"
    ORIG_IDX_JSON="$("$PY" "$BENCH_DIR/original_bench.py" orig --conn "$ORIG_CONN" --keys "$ORIG_KEYS" \
        --ops check_key,find_user "${common[@]}")"
fi

# ---- the daemon -------------------------------------------------------------------------
# shellcheck disable=SC2119 # no extra environment
daemon_start
seed_users "$COMPARE_USERS"
seed_sessions 1 "$COMPARE_SESSIONS" "$COMPARE_USERS"
KEYS="$BENCH_TMP/keys.txt"
write_keys 1 "$COMPARE_SESSIONS" "$KEYS"
# Every key once through forward auth before each check measurement, as bench/run does: the
# check figures are then those of a running daemon (hot sessions cached: the daemon runs with
# its defaults, so an entry is trusted for cache_max_age = 30 s), not of its first minute.
warm_daemon() {
    BENCH_KEYFILE="$KEYS" run_wrk_walk compare_warm auth_rotate.lua /v1/auth 8 >/dev/null
    log "cache warmed: $COMPARE_SESSIONS keys sent once"
}
warm_daemon
log "pgusers over HTTP (python http.client keep-alive): measuring"
# check_key first, within the cache lifetime of the warm-up
HTTP_JSON="$("$PY" "$BENCH_DIR/original_bench.py" http --base "http://127.0.0.1:$BENCH_PORT" \
    --token "$BENCH_API_TOKEN" --keys "$KEYS" --ops check_key,find_user,create_user,validate_user \
    "${common[@]}")"

WRK_JSON="{}"
if [[ "$COMPARE_WRK" == 1 ]]; then
    export BENCH_KEYFILE="$KEYS" BENCH_LOGIN_USERS="$COMPARE_LOGIN_USERS"
    BENCH_RUN_ID="cmp$(date +%s)"
    export BENCH_RUN_ID
    WRK_JSON="{"
    sep=""
    IFS=, read -r -a concs <<<"$COMPARE_CONCURRENCY"
    for c in "${concs[@]}"; do
        warm_daemon
        log "pgusers with wrk, $c connection(s)"
        chk="$(run_wrk "check_c$c" check_rotate.lua /v1/sessions/check "${COMPARE_DURATION}s" "$c")"
        lgn="$(run_wrk "login_c$c" login_rotate.lua /v1/login "${COMPARE_DURATION}s" "$c")"
        usr="$(run_wrk "users_c$c" create_users.lua /v1/users "${COMPARE_DURATION}s" "$c")"
        fnd="$(run_wrk "find_c$c" find_users.lua /v1/users "${COMPARE_DURATION}s" "$c" BENCH_FIND_USERS="$COMPARE_USERS")"
        WRK_JSON+="$sep\"$c\":{\"check_key\":$chk,\"validate_user\":$lgn,\"create_user\":$usr,\"find_user\":$fnd}"
        sep=","
    done
    WRK_JSON+="}"
fi

HASH_JSON="$("$PY" "$BENCH_DIR/hashrate.py" 5)"
HASH_THREADS="${BENCH_HASH_THREADS:-$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))}"

mkdir -p "$BENCH_DIR/results"
OUT="$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)-$(hostname -s)-compare.json"
cat >"$BENCH_TMP/compare.json" <<EOF
{"meta": {"date": "$(date -u +%FT%TZ)", "host": "$(hostname -s)", "cores": $(nproc),
  "original_version": "$ORIG_VERSION", "users": $COMPARE_USERS, "sessions": $COMPARE_SESSIONS,
  "login_users": $COMPARE_LOGIN_USERS, "concurrency": "$COMPARE_CONCURRENCY", "duration_s": $COMPARE_DURATION,
  "hash_threads": $HASH_THREADS},
 "original": $ORIG_JSON, "original_indexed": $ORIG_IDX_JSON, "pgusers_http": $HTTP_JSON,
 "pgusers_wrk": $WRK_JSON, "hashing": $HASH_JSON}
EOF
python3 "$BENCH_DIR/compare_report.py" "$BENCH_TMP/compare.json" "$OUT"
