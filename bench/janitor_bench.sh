#!/usr/bin/env bash
# Janitor at scale: 1,000,000 expired + 100,000 live sessions; session checks at load before and
# during the purge; purge time. See bench/README.md.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${JANITOR_USERS:=10000}"
: "${JANITOR_LIVE:=100000}"
: "${JANITOR_EXPIRED:=1000000}"
: "${JANITOR_WINDOW:=3}"          # seconds per wrk measurement window
: "${JANITOR_MODE:=deadline}"     # deadline: the janitor runs every 1s from the start and the sessions
                                  # expire at a fixed instant; restart: they are expired at once and the
                                  # daemon is restarted with PGUSERS_JANITOR_INTERVAL=1s after "before"
: "${JANITOR_EXPIRE_IN:=120}"     # deadline mode: seconds from the start of seeding to the expiry instant
: "${JANITOR_REFRESH_INTERVAL:=3600}"  # session.refresh_interval given to the daemon, in seconds
: "${JANITOR_CACHE_MAX_AGE:=1h}"         # session.cache_max_age given to the daemon
# A long refresh interval and cache lifetime keep expiry writes and cache reloads out of the
# windows, so that what changes between "before" and "during" is the purge alone (with the
# defaults, 60 s and 30 s, the seeded sessions' writes and reloads all fall due together).
: "${JANITOR_MAX_WAIT:=900}"      # give up on the purge after this many seconds
: "${JANITOR_CACHE_CAPACITY:=}"   # e.g. 0 to make every check go to the database

bench_begin

extra_env=(PGUSERS_SESSION__REFRESH_INTERVAL="${JANITOR_REFRESH_INTERVAL}s"
    PGUSERS_SESSION__CACHE_MAX_AGE="$JANITOR_CACHE_MAX_AGE")
if [[ -n "$JANITOR_CACHE_CAPACITY" ]]; then
    extra_env+=(PGUSERS_SESSION__CACHE_CAPACITY="$JANITOR_CACHE_CAPACITY")
fi
if [[ "$JANITOR_MODE" == deadline ]]; then
    daemon_start "${extra_env[@]}" PGUSERS_JANITOR_INTERVAL=1s
else
    daemon_start "${extra_env[@]}" PGUSERS_JANITOR_INTERVAL=24h
fi

seed_users "$JANITOR_USERS"
# the instant the "expired" sessions expire (deadline mode), as epoch seconds
DEADLINE=$(( $(date +%s) + JANITOR_EXPIRE_IN ))
if [[ "$JANITOR_MODE" == deadline ]]; then
    # the janitor purges a session once it has been expired for session.refresh_interval
    EXPIRES="to_timestamp($DEADLINE) - interval '$JANITOR_REFRESH_INTERVAL seconds'"
else
    EXPIRES="now() - interval '1 hour'"
fi
log "seeding $JANITOR_EXPIRED expired sessions$( [[ $JANITOR_MODE == deadline ]] && echo ", purgeable from $(date -u -d "@$DEADLINE" +%T)")"
sql -c "insert into sessions (key_digest, userid, created_at, last_seen_at, expires_at)
        select sha256(convert_to($(key_expr g.i), 'UTF8')), u.userid,
               now() - interval '11 days', now() - interval '1 day', $EXPIRES
        from generate_series($((JANITOR_LIVE + 1)), $((JANITOR_LIVE + JANITOR_EXPIRED))) g(i)
        join users u on lower(u.username) = 'u' || (1 + (g.i - 1) % $JANITOR_USERS)"
seed_sessions 1 "$JANITOR_LIVE" "$JANITOR_USERS"
sql -c "vacuum analyze sessions"
expired0="$JANITOR_EXPIRED"
live0="$JANITOR_LIVE"

KEYS="$BENCH_TMP/keys.txt"
write_keys 1 "$JANITOR_LIVE" "$KEYS"
export BENCH_KEYFILE="$KEYS"
log "warming the cache with every live key"
run_wrk_walk warm check_rotate.lua /v1/sessions/check "$BENCH_CONNECTIONS" >/dev/null

RES="$BENCH_TMP/janitor.jsonl"
: >"$RES"
window() { # window LABEL (T0: the purge trigger, epoch seconds)
    local r
    r="$(run_wrk "jan_$1" check_rotate.lua /v1/sessions/check "${JANITOR_WINDOW}s" "$BENCH_CONNECTIONS")"
    printf '{"phase":"%s","t":%s,"wrk":%s}\n' "$1" "$(awk "BEGIN {print $(date +%s.%N) - ${T0:-0}}")" "$r" >>"$RES"
    log "$1: $(python3 "$BENCH_DIR/report.py" line "$r")"
}

POLL="$BENCH_TMP/poll.txt"
poller() {
    local t0=$1 n now
    while :; do
        n="$(sql -c "select count(*) from sessions where expires_at < now()")" || n=-1
        now="$(date +%s.%N)"
        echo "$(awk "BEGIN {print $now - $t0}") $n" >>"$POLL"
        if [[ "$n" == 0 ]] && awk "BEGIN {exit !($now - $t0 > 1.5)}"; then break; fi
        awk "BEGIN {exit !($now - $t0 > $JANITOR_MAX_WAIT)}" && break
        sleep 0.25
    done
}
: >"$POLL"
if [[ "$JANITOR_MODE" == deadline ]]; then
    left=$(( DEADLINE - $(date +%s) ))
    if (( left < JANITOR_WINDOW + 2 )); then
        die "preparation took too long: the sessions expire in ${left}s; raise JANITOR_EXPIRE_IN (now $JANITOR_EXPIRE_IN)"
    fi
    # idle until just before the "before" window that ends at the expiry instant
    sleep $(( left - JANITOR_WINDOW - 2 ))
    T0="$DEADLINE"
    log "checks before the purge (the sessions become purgeable at $(date -u -d "@$DEADLINE" +%T))"
    window before
    while (( $(date +%s) < DEADLINE )); do sleep 0.1; done
    T0="$DEADLINE"
    MODE_USED="deadline (janitor interval 1s all along)"
else
    log "checks before the purge (janitor interval 24h)"
    T0="$(date +%s.%N)"
    window before
    daemon_stop
    T0="$(date +%s.%N)"
    daemon_start "${extra_env[@]}" PGUSERS_JANITOR_INTERVAL=1s
    MODE_USED="restart with PGUSERS_JANITOR_INTERVAL=1s (cache cold after the restart)"
fi
poller "$T0" &
POLL_PID=$!
BENCH_BG_PIDS+=("$POLL_PID")
log "checks during the purge ($MODE_USED)"
window during
while kill -0 "$POLL_PID" 2>/dev/null; do
    window during
done
wait "$POLL_PID" || true
log "checks after the purge"
window after

mkdir -p "$BENCH_DIR/results"
OUT="$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)-$(hostname -s)-janitor.json"
python3 - "$RES" "$POLL" "$OUT" <<EOF
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
poll = [tuple(map(float, l.split())) for l in open(sys.argv[2]) if l.strip()]
expired0 = $expired0
done = first = None
peak = expired0  # every seeded session is expired and purgeable at t = 0
for t, n in poll:
    peak = max(peak, n)
    if first is None and peak > 0 and 0 <= n < peak:
        first = t
    if done is None and peak > 0 and n == 0:
        done = t
def summ(r):
    d = r["wrk"]; l = d["latency_us"]; s = d["duration_us"] / 1e6
    st = d.get("status", {})
    err = sum(v for k, v in st.items() if not k.startswith("2")) + sum(d["errors"][k] for k in ("connect", "read", "write", "timeout"))
    return {"phase": r["phase"], "t": r["t"], "rps": d["requests"] / s, "p50_ms": l["p50"] / 1000, "p99_ms": l["p99"] / 1000, "max_ms": l["max"] / 1000, "errors": err}
S = [summ(r) for r in rows]
res = {"meta": {"date": "$(date -u +%FT%TZ)", "host": "$(hostname -s)", "cores": $(nproc), "live": $live0,
                "expired": expired0, "mode": "$MODE_USED", "window_s": $JANITOR_WINDOW,
                "connections": $BENCH_CONNECTIONS, "cache_capacity": "${JANITOR_CACHE_CAPACITY:-default}",
                "refresh_interval_s": $JANITOR_REFRESH_INTERVAL, "cache_max_age": "$JANITOR_CACHE_MAX_AGE"},
       "purge_seconds": done, "first_progress_seconds": first,
       "purge_rate_per_s": expired0 / (done - (first or 0)) if done and done > (first or 0) else None,
       "windows": S, "poll": poll, "raw": rows}
json.dump(res, open(sys.argv[3], "w"), indent=1)
print()
print(f"janitor bench {res['meta']['date']} host {res['meta']['host']} ({res['meta']['cores']} cores): "
      f"{expired0:,} expired + {res['meta']['live']:,} live sessions, checks at {res['meta']['connections']} connections, "
      f"cache {res['meta']['cache_capacity']}, janitor started by {res['meta']['mode']}")
print(f"{'phase':8} {'t (s)':>7} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}")
for s in S:
    print(f"{s['phase']:8} {s['t']:>7.1f} {s['rps']:>10,.0f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} {s['max_ms']:>8.1f} {s['errors']:>7}")
dur = [s for s in S if s["phase"] == "during"]
bef = [s for s in S if s["phase"] == "before"]
if dur and bef:
    print(f"p99 during (worst window) / before: {max(s['p99_ms'] for s in dur) / bef[0]['p99_ms']:.2f}; "
          f"p50 during (median window) / before: {sorted(s['p50_ms'] for s in dur)[len(dur)//2] / bef[0]['p50_ms']:.2f}")
if done is not None:
    print(f"purge: {expired0:,} expired sessions gone {done:.1f} s after the trigger "
          f"(first progress at {first:.1f} s; {res['purge_rate_per_s'] or 0:,.0f} rows/s)")
else:
    print(f"purge NOT finished after $JANITOR_MAX_WAIT s; last count {poll[-1][1] if poll else '?'}")
print(f"raw results: {sys.argv[3]}")
EOF
