#!/usr/bin/env bash
# check_key through the Python client (clients/python: HTTP to the daemon) against the Python
# library's own check_key (PyPI pgusers 0.9.4: psycopg to PostgreSQL), one thread each, on the
# same machine and the same PostgreSQL server, at each table size of PYBENCH_SIZES. See
# bench/README.md.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${PYBENCH_SIZES:=10000,100000}"   # users = sessions on both sides, one measurement per size
: "${PYBENCH_DURATION:=5}"            # seconds per run
: "${PYBENCH_ROUNDS:=3}"              # client and library runs in turn; the median run is shown
: "${PYBENCH_ORIG_INDEXED:=1}"        # also the library with the indexes its tables lack

bench_begin
[[ "$PG_OWNED" == 1 ]] || die "python_client_bench.sh needs the throwaway server (unset PGUSERS_BENCH_DATABASE_URL)"

VENV="$BENCH_TMP/venv"
log "venv: pip install pgusers ./clients/python"
PY="$(venv_python "$VENV" pgusers "$REPO_DIR/clients/python")"
ORIG_VERSION="$("$VENV/bin/pip" show pgusers 2>/dev/null | awk '/^Version:/ {print $2}')"
pg_createdb pgusers_original
ORIG_CONN="$(pg_conn_db pgusers_original)"
orig_sql() { psql "$ORIG_CONN" -v ON_ERROR_STOP=1 -Atq "$@"; }

daemon_start
export PGUSERS_URL="http://127.0.0.1:$BENCH_PORT"

bench() { # bench MODE OUTFILE [ARGS...]: one run, its JSON line appended to OUTFILE
    local mode=$1 out=$2
    shift 2
    "$PY" "$BENCH_DIR/python_client_bench.py" "$mode" --duration "$PYBENCH_DURATION" "$@" >>"$out"
}

RESULTS="{"
sep=""
IFS=, read -r -a sizes <<<"$PYBENCH_SIZES"
for n in "${sizes[@]}"; do
    log "size $n: seeding the library's tables (created by its UserSpace()) and the daemon's"
    ORIG_KEYS="$BENCH_TMP/orig-keys-$n.txt"
    "$PY" "$BENCH_DIR/original_bench.py" orig-seed --conn "$ORIG_CONN" --users "$n" --sessions "$n" \
        --password "$BENCH_PASSWORD" --keys "$ORIG_KEYS"
    seed_users "$n"
    have="$(sql -c "select count(*) from sessions")"
    seed_sessions "$((have + 1))" "$n" "$n"
    KEYS="$BENCH_TMP/keys-$n.txt"
    write_keys 1 "$n" "$KEYS"
    client="$BENCH_TMP/client-$n.jsonl" library="$BENCH_TMP/library-$n.jsonl"
    indexed="$BENCH_TMP/library-indexed-$n.jsonl"
    for r in $(seq 1 "$PYBENCH_ROUNDS"); do
        # Every key once through the daemon first (wrk), as bench/run and compare_original.sh
        # do: the figure is that of a running daemon whose hot sessions are cached.
        BENCH_KEYFILE="$KEYS" run_wrk_walk "pyclient_warm_$n" auth_rotate.lua /v1/auth 8 >/dev/null
        bench client "$client" --keys "$KEYS"
        bench library "$library" --conn "$ORIG_CONN" --keys "$ORIG_KEYS"
        log "size $n round $r: client $(tail -1 "$client" | cut -c1-40)…  library $(tail -1 "$library" | cut -c1-40)…"
    done
    if [[ "$PYBENCH_ORIG_INDEXED" == 1 ]]; then
        # users.userid is its primary key already; sessions.key has no index in the library
        orig_sql -c "create index pybench_sessions_key on sessions (key)" -c "analyze sessions"
        for r in $(seq 1 "$PYBENCH_ROUNDS"); do
            bench library "$indexed" --conn "$ORIG_CONN" --keys "$ORIG_KEYS"
        done
        orig_sql -c "drop index pybench_sessions_key"
        log "size $n, library with indexes: $(tail -1 "$indexed" | cut -c1-40)…"
    fi
    c="$("$PY" "$BENCH_DIR/python_client_bench.py" median "$client")"
    l="$("$PY" "$BENCH_DIR/python_client_bench.py" median "$library")"
    i=null
    [[ -s "$indexed" ]] && i="$("$PY" "$BENCH_DIR/python_client_bench.py" median "$indexed")"
    RESULTS+="$sep\"$n\": {\"client\": $c, \"library\": $l, \"library_indexed\": $i}"
    sep=", "
done
RESULTS+="}"

mkdir -p "$BENCH_DIR/results"
OUT="$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)-$(hostname -s)-pyclient.json"
cat >"$OUT" <<EOF
{"meta": {"date": "$(date -u +%FT%TZ)", "host": "$(hostname -s)", "cores": $(nproc),
  "library_version": "$ORIG_VERSION", "duration_s": $PYBENCH_DURATION, "rounds": $PYBENCH_ROUNDS},
 "sizes": $RESULTS}
EOF
"$PY" - "$OUT" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
print("check_key, one thread (median run; ops/s, p50 ms)")
print(f"{'sessions':>9} | {'client':>15} | {'library':>15} | {'library+indexes':>15} | client ÷ library (÷ indexed)")
for n, r in data["sizes"].items():
    c, l, i = r["client"], r["library"], r["library_indexed"]
    fmt = lambda x: f"{x['median_ops_per_s']:8.0f} {x['p50_ms']:6.2f}" if x else f"{'–':>15}"
    ratio = f"{c['median_ops_per_s'] / l['median_ops_per_s']:.1f} ×"
    if i:
        ratio += f" ({c['median_ops_per_s'] / i['median_ops_per_s']:.1f} ×)"
    print(f"{int(n):9,} | {fmt(c)} | {fmt(l)} | {fmt(i)} | {ratio}")
print(f"saved: {sys.argv[1]}")
EOF
