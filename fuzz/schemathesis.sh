#!/usr/bin/env bash
# API-level fuzz of every endpoint of pgusers from its OpenAPI description, with schemathesis.
#
# Starts a throwaway daemon (embedded PostgreSQL in a temp dir, loopback only), creates an admin
# user and a session so that authenticated endpoints are reached, then runs
#     schemathesis run <url>/v1/openapi.json
# with the checks `not_a_server_error` and `response_schema_conformance`: no 5xx for any input,
# responses as described, no crash (the daemon must still be alive and have logged no panic),
# no hang (per-request timeout and a time limit for the whole run). Exits non-zero on any failure.
#
# Administrator operations get `Authorization: Bearer <API token>`; the session-holder operations
# (/v1/me*, /v1/logout, /v1/auth*) get the session key of an admin user, as bearer or cookie,
# renewed (re-login, or a fresh user) whenever the fuzzing itself ended it.
#
# Environment (all optional):
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 50)
#   SCHEMATHESIS_TIME_LIMIT    seconds for the whole schemathesis run; beyond it the run fails (default 1500)
#   SCHEMATHESIS_MAX_TIME      if set, passed as --max-time: fuzz until this budget is spent
#   SCHEMATHESIS_REQUEST_TIMEOUT  seconds one request may take before it counts as a hang (default 20)
#   SCHEMATHESIS_CHECKS        default not_a_server_error,response_schema_conformance
#   SCHEMATHESIS_PHASES        default: schemathesis' own (examples,coverage,fuzzing,stateful)
#   SCHEMATHESIS_WORKERS       default 1 (the machine is shared)
#   SCHEMATHESIS_SEED          reproduce a run (the seed is printed)
#   SCHEMATHESIS_VERSION       default 4.32.5 (works with Python 3.11)
#   SCHEMATHESIS_VENV          reuse an existing venv with schemathesis installed instead of a fresh one
#   SCHEMATHESIS_REPORT_DIR    copy the reports (JUnit, NDJSON, VCR cassette) and the daemon log here
#   SCHEMATHESIS_EXTRA_ARGS    more arguments for `schemathesis run` (word-split)
#   SCHEMATHESIS_BIN           daemon binary (default: cargo build, then target/debug/pgusers)
#   FUZZ_KEEP_TMP=1            keep the temp dir (daemon log, database) for inspection
#   FUZZ_REAL_ARGON2=1         keep the production argon2 cost (default: cheap hashing, same code)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
TIME_LIMIT="${SCHEMATHESIS_TIME_LIMIT:-1500}"
REQUEST_TIMEOUT="${SCHEMATHESIS_REQUEST_TIMEOUT:-20}"
CHECKS="${SCHEMATHESIS_CHECKS:-not_a_server_error,response_schema_conformance}"
WORKERS="${SCHEMATHESIS_WORKERS:-1}"
SEED="${SCHEMATHESIS_SEED:-$(( (RANDOM << 15) | RANDOM ))}"
ST_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"

log() { printf '[schemathesis.sh] %s\n' "$*" >&2; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/pgusers-schemathesis.XXXXXX")"
# As root, the embedded PostgreSQL runs as an unprivileged account that must reach its directory.
chmod 755 "$TMP"
DAEMON_PID=""
ST_PID=""

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$ST_PID" ]] && kill -0 "$ST_PID" 2>/dev/null; then
        kill -TERM "$ST_PID" 2>/dev/null || true
        wait "$ST_PID" 2>/dev/null || true
    fi
    if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -TERM "$DAEMON_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$DAEMON_PID" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$DAEMON_PID" 2>/dev/null; then
            log "daemon did not stop on SIGTERM; killing it"
            kill -KILL "$DAEMON_PID" 2>/dev/null || true
        fi
        wait "$DAEMON_PID" 2>/dev/null || true
    fi
    # The embedded PostgreSQL stops with the daemon; if it was killed, stop the cluster ourselves.
    if [[ -f "$TMP/db/pgdata/postmaster.pid" ]]; then
        local pg_pid
        pg_pid="$(head -n1 "$TMP/db/pgdata/postmaster.pid" 2>/dev/null || true)"
        if [[ "$pg_pid" =~ ^[0-9]+$ ]] && kill -0 "$pg_pid" 2>/dev/null; then
            kill -TERM "$pg_pid" 2>/dev/null || true
            sleep 1
        fi
    fi
    if [[ -n "${SCHEMATHESIS_REPORT_DIR:-}" ]]; then
        mkdir -p "$SCHEMATHESIS_REPORT_DIR"
        cp -r "$TMP/report/." "$SCHEMATHESIS_REPORT_DIR/" 2>/dev/null || true
        cp "$TMP/daemon.log" "$SCHEMATHESIS_REPORT_DIR/daemon.log" 2>/dev/null || true
    fi
    if [[ "${FUZZ_KEEP_TMP:-0}" == 1 ]]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the daemon binary (rebuilt so that the served description is the file in the tree)
if [[ -n "${SCHEMATHESIS_BIN:-}" ]]; then
    BIN="$SCHEMATHESIS_BIN"
else
    log "building the daemon"
    (cd "$ROOT" && cargo build --quiet --bin pgusers)
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/pgusers"
fi
[[ -x "$BIN" ]] || { log "no daemon binary at $BIN"; exit 2; }

# --- schemathesis in a private venv
if [[ -n "${SCHEMATHESIS_VENV:-}" ]]; then
    VENV="$SCHEMATHESIS_VENV"
else
    VENV="$TMP/venv"
    log "installing schemathesis==$ST_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi
"$VENV/bin/schemathesis" --version >&2

# --- a throwaway daemon on a free loopback port
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
mkdir -p "$TMP/db" "$TMP/report"
export PGUSERS_COOKIE_SECURE=false
export PGUSERS_LOG__LEVEL="${PGUSERS_LOG__LEVEL:-info}"
export PGUSERS_METRICS__ENABLED=true
# Per-address login throttling would turn every later login into 429 and hide the login path from
# the fuzzer; per-account throttling stays at its default (repeated usernames still reach the 429).
export PGUSERS_THROTTLE__ADDRESS_FAILURES="${PGUSERS_THROTTLE__ADDRESS_FAILURES:-1000000}"
if [[ "${FUZZ_REAL_ARGON2:-0}" != 1 ]]; then
    # Same code path, cheaper parameters: a debug build hashes in ~1 s with the defaults.
    export PGUSERS_PASSWORD__ARGON2_MEMORY_KIB=1024
    export PGUSERS_PASSWORD__ARGON2_ITERATIONS=1
fi
unset PGUSERS_API_TOKENS PGUSERS_LISTEN PGUSERS_CONFIG
log "starting $BIN serve --embedded $TMP/db --listen 127.0.0.1:$PORT"
"$BIN" serve --embedded "$TMP/db" --listen "127.0.0.1:$PORT" >"$TMP/daemon.log" 2>&1 &
DAEMON_PID=$!

ready=0
for _ in $(seq 1 240); do
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        log "the daemon exited during start-up:"; tail -n 30 "$TMP/daemon.log" >&2; exit 1
    fi
    if curl -sf -o /dev/null "$BASE/readyz"; then ready=1; break; fi
    sleep 0.5
done
[[ "$ready" == 1 ]] || { log "the daemon did not become ready in 120 s"; tail -n 30 "$TMP/daemon.log" >&2; exit 1; }
TOKEN="$(tr -d '[:space:]' <"$TMP/db/api-token")"
[[ -n "$TOKEN" ]] || { log "no API token in $TMP/db/api-token"; exit 1; }

# The served description must be the file in the tree (else the binary is stale).
curl -sf "$BASE/v1/openapi.json" -o "$TMP/served.json"
python3 - "$ROOT/openapi/pgusers.json" "$TMP/served.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
if a != b:
    sys.exit("GET /v1/openapi.json differs from openapi/pgusers.json: rebuild the daemon")
EOF

# --- a user and an admin session, so that authenticated endpoints are reached
FUZZ_USER="fuzz-admin"
FUZZ_PASSWORD="fuzz-$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
curl -sf -X POST "$BASE/v1/users" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$FUZZ_USER\",\"password\":\"$FUZZ_PASSWORD\",\"email\":\"fuzz-admin@example.com\",\"admin\":true}" >/dev/null
FUZZ_KEY="$(curl -sf -X POST "$BASE/v1/login" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$FUZZ_USER\",\"password\":\"$FUZZ_PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
FUZZ_USER_ID="$(curl -sf -X POST "$BASE/v1/users" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"username":"fuzz-user","password":"fuzz-user-password","email":"fuzz-user@example.com","extra_data":{"k":[1,"x"]}}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["userid"])')"
# A group with a member, so that /v1/groups/{name} (whose example is "ops") reaches a real group.
curl -sf -o /dev/null -X PUT "$BASE/v1/users/$FUZZ_USER_ID/groups" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"groups":["ops","billing"]}'

# --- auth hooks: API token for administrator calls, a live session key for session-holder calls
mkdir -p "$TMP/hooks"
cat >"$TMP/hooks/pgusers_fuzz_hooks.py" <<'EOF'
import os
import random
import secrets
import time

import requests
import schemathesis

BASE = os.environ["PGUSERS_FUZZ_URL"]
TOKEN = os.environ["PGUSERS_FUZZ_TOKEN"]
# Session-holder operations: a live session key (bearer or cookie).
SESSION_PATHS = r"^(/v1/me|/v1/me/.*|/v1/logout|/v1/auth|/v1/auth/admin|/logout|/sessions)$"
# Anonymous operations: no credential at all.
ANONYMOUS_PATHS = r"^(/healthz|/readyz|/metrics|/v1/openapi.json|/v1/login|/v1/sessions/check|/login)$"
HTTP = requests.Session()


class Holder:
    """An admin user's session; the fuzzing may log it out, kill it, change the password or delete
    the user, so it is checked before each use and rebuilt when needed."""

    user = os.environ["PGUSERS_FUZZ_USER"]
    password = os.environ["PGUSERS_FUZZ_PASSWORD"]
    key = os.environ["PGUSERS_FUZZ_KEY"]

    @classmethod
    def _post(cls, path, body, token=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for _ in range(10):
            r = HTTP.post(BASE + path, json=body, headers=headers, timeout=30)
            if r.status_code != 429:
                return r
            time.sleep(min(float(r.headers.get("Retry-After", "1") or 1), 5.0))
        return r

    @classmethod
    def valid(cls):
        r = cls._post("/v1/sessions/check", {"key": cls.key})
        return r.status_code == 200 and r.json().get("admin") is True

    @classmethod
    def login(cls):
        r = cls._post("/v1/login", {"username": cls.user, "password": cls.password})
        if r.status_code == 201 and r.json().get("admin") is True:
            cls.key = r.json()["key"]
            return True
        return False

    @classmethod
    def new_user(cls):
        cls.user = "fuzz-" + secrets.token_hex(6)
        cls.password = secrets.token_urlsafe(18)
        r = cls._post("/v1/users", {"username": cls.user, "password": cls.password,
                                    "email": cls.user + "@example.com", "admin": True}, token=TOKEN)
        if r.status_code != 201:
            raise RuntimeError(f"cannot create a fuzz user: {r.status_code} {r.text[:200]}")

    @classmethod
    def live_key(cls):
        if cls.valid() or cls.login():
            return cls.key
        cls.new_user()
        if not cls.login():
            raise RuntimeError("cannot log the fuzz user in")
        return cls.key


@schemathesis.auth(refresh_interval=None).apply_to(path_regex=SESSION_PATHS)
class SessionKeyAuth:
    def get(self, case, ctx):
        return Holder.live_key()

    def set(self, case, data, ctx):
        # Both credential carriers: mostly the bearer header, sometimes the cookie.
        if random.random() < 0.3:
            case.cookies = dict(case.cookies or {}, pgusers_session=data)
        else:
            case.headers = dict(case.headers or {}, Authorization=f"Bearer {data}")


@schemathesis.auth(refresh_interval=None).skip_for(path_regex=SESSION_PATHS + "|" + ANONYMOUS_PATHS)
class ApiTokenAuth:
    def get(self, case, ctx):
        return TOKEN

    def set(self, case, data, ctx):
        case.headers = dict(case.headers or {}, Authorization=f"Bearer {data}")
EOF
export PGUSERS_FUZZ_URL="$BASE" PGUSERS_FUZZ_TOKEN="$TOKEN" PGUSERS_FUZZ_USER="$FUZZ_USER" \
    PGUSERS_FUZZ_PASSWORD="$FUZZ_PASSWORD" PGUSERS_FUZZ_KEY="$FUZZ_KEY"
export PYTHONPATH="$TMP/hooks${PYTHONPATH:+:$PYTHONPATH}"
export SCHEMATHESIS_HOOKS=pgusers_fuzz_hooks

# --- the fuzz run
# shellcheck disable=SC2054  # commas are schemathesis list syntax
ARGS=(
    run "$BASE/v1/openapi.json"
    --checks "$CHECKS"
    --max-examples "$MAX_EXAMPLES"
    --seed "$SEED"
    --workers "$WORKERS"
    --request-timeout "$REQUEST_TIMEOUT"
    --max-redirects 0
    --continue-on-failure
    --generation-database none
    --report junit,ndjson,vcr
    --report-dir "$TMP/report"
    --no-color
)
[[ -n "${SCHEMATHESIS_PHASES:-}" ]] && ARGS+=(--phases "$SCHEMATHESIS_PHASES")
[[ -n "${SCHEMATHESIS_MAX_TIME:-}" ]] && ARGS+=(--max-time "$SCHEMATHESIS_MAX_TIME")
# shellcheck disable=SC2206
[[ -n "${SCHEMATHESIS_EXTRA_ARGS:-}" ]] && ARGS+=(${SCHEMATHESIS_EXTRA_ARGS})

log "schemathesis ${ARGS[*]}  (seed $SEED, time limit ${TIME_LIMIT}s)"
set +e
(cd "$TMP" && exec timeout --signal=TERM --kill-after=30 "$TIME_LIMIT" "$VENV/bin/schemathesis" "${ARGS[@]}") &
ST_PID=$!
wait "$ST_PID"
st_rc=$?
ST_PID=""
set -e

failed=0
if [[ "$st_rc" == 124 || "$st_rc" == 137 ]]; then
    log "FAIL: schemathesis did not finish within ${TIME_LIMIT}s (a hang?)"
    failed=1
elif [[ "$st_rc" != 0 ]]; then
    log "FAIL: schemathesis exited with $st_rc"
    failed=1
fi
if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
    log "FAIL: the daemon is no longer running (crash):"
    tail -n 30 "$TMP/daemon.log" >&2
    failed=1
elif ! curl -sf -m 10 -o /dev/null "$BASE/healthz"; then
    log "FAIL: the daemon no longer answers /healthz (hang)"
    failed=1
fi
if grep -q "panicked" "$TMP/daemon.log"; then
    log "FAIL: the daemon log shows a panic:"
    grep -m5 "panicked" "$TMP/daemon.log" >&2
    failed=1
fi
internal="$(grep -c '"correlation_id"' "$TMP/daemon.log" || true)"
if [[ "$internal" != 0 ]]; then
    log "the daemon logged $internal internal errors; first causes:"
    grep '"correlation_id"' "$TMP/daemon.log" | python3 -c '
import json, sys
seen = set()
for line in sys.stdin:
    try:
        e = json.loads(line).get("error", "?")
    except ValueError:
        continue
    if e not in seen:
        seen.add(e)
        print("   ", e[:300])
' >&2
fi
if [[ "$failed" == 0 ]]; then
    log "PASS (seed $SEED)"
else
    log "reproduce with SCHEMATHESIS_SEED=$SEED"
fi
exit "$failed"
