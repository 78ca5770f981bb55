#!/usr/bin/env bash
# The reliability review's fault runs, re-run against the release binary on a throwaway cluster:
# a table lock, a frozen cluster, expiry write-behind under a lock, kill -9 under load, a slow
# request body. Prints a table and writes bench/results/<date>-<host>-faults.json; exits 1 when a
# request waited longer than the documented bound or an acknowledged write was lost.
# See bench/README.md.
set -euo pipefail

: "${BENCH_PORT:=18473}" # not bench/run's 18471: a daemon of another bench would answer /readyz
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

: "${FAULT_SCENARIOS:=lock,freeze,writebehind,kill,slowbody}"
: "${FAULT_LOCK_SECS:=20}"        # 1: how long psql holds the lock on sessions
: "${FAULT_FREEZE_SECS:=15}"      # 2: how long the cluster stays SIGSTOPped
: "${FAULT_WB_LOCK_SECS:=20}"     # 3: the lock under the write-behind load
: "${FAULT_WB_RATE:=200}"         # 3: cached checks per second over the 8 hot sessions
: "${FAULT_WB_AFTER_SECS:=10}"    # 3: load after COMMIT, while deadlocks would show
: "${FAULT_AFTER_SECS:=5}"        # 1, 2: probing after the fault ends
: "${FAULT_PROBE_PAUSE:=0.2}"     # 1, 2: pause between two requests of one loop
: "${FAULT_PROBE_LOOPS:=1}"       # 1, 2: loops per class (more: the report's load under the lock)
: "${FAULT_KILL_RUNS:=3}"         # 4: kill -9 runs
: "${FAULT_KILL_LOAD_SECS:=8}"    # 4: load per run
: "${FAULT_KILL_AT:=3}"           # 4: seconds into the load of the kill
: "${FAULT_KILL_DOWN:=1}"         # 4: seconds the daemon stays down
: "${FAULT_KILL_THREADS:=8}"      # 4: client threads
: "${FAULT_SLOW_CONNS:=10}"       # 5: connections per slow-body variant
: "${FAULT_SLACK:=0.5}"           # seconds a wait may exceed its bound (curl, a loaded machine)

[[ -z "${PGUSERS_BENCH_DATABASE_URL:-}" ]] \
    || die "fault runs lock, freeze and restart their database: unset PGUSERS_BENCH_DATABASE_URL"
has() { [[ ",$FAULT_SCENARIOS," == *",$1,"* ]]; }
[[ "$FAULT_PROBE_LOOPS" =~ ^[1-9][0-9]?$ ]] || die "FAULT_PROBE_LOOPS must be 1 to 99"

# The cluster's processes while they are SIGSTOPped, so that every exit path thaws them.
declare -a FROZEN_PIDS=()
thaw() {
    if ((${#FROZEN_PIDS[@]})); then
        kill -CONT "${FROZEN_PIDS[@]}" 2>/dev/null || true
        FROZEN_PIDS=()
    fi
}
# Stops the throwaway cluster by its postmaster alone: as root, runuser (PG_PID) outlives a
# SIGINT of its own for lib.sh's whole 10 s wait and is then SIGKILLed, with a "Killed" line.
stop_cluster() {
    [[ -n "$PG_PID" && -n "$PG_SOCKDIR" ]] || return 0
    local pm _
    pm="$(head -1 "$PG_SOCKDIR/data/postmaster.pid" 2>/dev/null)"
    [[ -n "$pm" ]] && kill -INT "$pm" 2>/dev/null
    for _ in $(seq 1 100); do
        kill -0 "$PG_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$PG_PID" 2>/dev/null
    wait "$PG_PID" 2>/dev/null
    PG_PID=""
}
# untrack PID...: background processes that ended and were waited for; the cleanup must not
# signal their ids, which may belong to someone else by then
untrack() {
    local -a keep=()
    local p q
    for p in "${BENCH_BG_PIDS[@]}"; do
        for q in "$@"; do [[ "$p" == "$q" ]] && continue 2; done
        keep+=("$p")
    done
    BENCH_BG_PIDS=("${keep[@]}")
}
# kill_tree PID: a process started here and its descendants (a probe loop's curl), children first
kill_tree() {
    local c
    for c in $(pgrep -P "$1"); do kill_tree "$c"; done
    kill "$1" 2>/dev/null
}
fault_cleanup() {
    local rc=$? p
    set +e
    thaw
    for p in "${BENCH_BG_PIDS[@]}"; do kill_tree "$p"; done
    daemon_stop
    stop_cluster
    (exit "$rc")
    bench_cleanup
}
trap fault_cleanup EXIT
trap 'exit 130' INT TERM
build_release
bench_tmp
pg_start
umask 077 # the scratch files below hold session keys

PY="$BENCH_TMP/faults.py"
URL="http://127.0.0.1:$BENCH_PORT"
SCHEMA="${PGUSERS_DATABASE__SCHEMA:-pgusers_daemon}"
PROBES="$BENCH_TMP/probes.txt"   # scenario class start_ms status seconds
META="$BENCH_TMP/meta.jsonl"     # one JSON object of figures per scenario
: >"$PROBES"
: >"$META"

cat >"$PY" <<'PYEOF'
"""Clients of bench/fault_runs.sh: loads, the kill -9 verification, slow bodies, the report."""
import http.client
import json
import re
import socket
import sys
import threading
import time

HOST = "127.0.0.1"


def secs(text):
    """A duration as check-config prints it ("8s", "500ms", "1m 30s", "0") in seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)", text)
    return sum(float(n) * units[u] for n, u in parts)


def bounds():
    """The effective configuration (TOML on stdin) -> the bounds the README documents."""
    import tomllib

    cfg = tomllib.loads(sys.stdin.read())
    print(json.dumps({
        "request_timeout_s": secs(cfg["server"]["request_timeout"]),
        "lock_timeout_s": secs(cfg["database"]["lock_timeout"]),
        "statement_timeout_s": secs(cfg["database"]["statement_timeout"]),
        "connect_timeout_s": secs(cfg["database"]["connect_timeout"]),
        "pool_size": cfg["database"]["pool_size"],
    }))


class Client:
    """One keep-alive connection; a request either answers (status, body) or fails as
    "refused" (nothing listens) or "noanswer" (the connection broke before a status line).
    Nothing is retried."""

    def __init__(self, port, timeout=30):
        self.port, self.timeout, self.conn = port, timeout, None

    def request(self, method, path, body=None, bearer=None):
        headers = {"Content-Type": "application/json"}
        if bearer:
            headers["Authorization"] = "Bearer " + bearer
        data = None if body is None else json.dumps(body)
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            self.conn.request(method, path, body=data, headers=headers)
            resp = self.conn.getresponse()
            raw = resp.read()
            if resp.getheader("Connection", "").lower() == "close":
                self.close()
        except ConnectionRefusedError:
            self.close()
            return "refused", None
        except (OSError, http.client.HTTPException):
            self.close()
            return "noanswer", None
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, None

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def auth_load(port, keyfile, rate, duration, out):
    """GET /v1/auth with the keys in turn, RATE a second, for DURATION s: [wall ms, status, ms]."""
    keys = [k.strip() for k in open(keyfile) if k.strip()]
    client, rows = Client(port), []
    t0, i = time.monotonic(), 0
    while time.monotonic() - t0 < duration:
        due = t0 + i / rate
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        start, wall = time.monotonic(), time.time()
        status, _ = client.request("GET", "/v1/auth", bearer=keys[i % len(keys)])
        rows.append([round(wall * 1000), status, round((time.monotonic() - start) * 1000, 2)])
        i += 1
    json.dump(rows, open(out, "w"))


def kill_load(port, token, duration, threads, prefix, password, out):
    """Each thread: create a user, log in, and every other time log out; every answer recorded."""
    end = time.monotonic() + duration
    records, lock = [], threading.Lock()

    def worker(tid):
        client, mine, i = Client(port, timeout=10), [], 0
        while time.monotonic() < end:
            name = f"{prefix}t{tid}n{i}"
            i += 1
            st, body = client.request("POST", "/v1/users", {
                "username": name, "password": password, "email": name + "@faults.invalid"}, token)
            mine.append({"op": "create", "status": st,
                         "userid": (body or {}).get("userid") if st == 201 else None})
            if st != 201:
                if not isinstance(st, int):
                    time.sleep(0.02)
                continue
            st, body = client.request("POST", "/v1/login", {"username": name, "password": password})
            key = (body or {}).get("key") if st == 201 else None
            mine.append({"op": "login", "status": st, "key": key})
            if key is None or i % 2:
                continue
            st, _ = client.request("POST", "/v1/logout", bearer=key)
            mine.append({"op": "logout", "status": st, "key": key})
        with lock:
            records.extend(mine)

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    json.dump(records, open(out, "w"))


def kill_verify(port, token, recfile, out):
    """Against the restarted daemon (empty cache): every acknowledged user exists, every
    acknowledged login not logged out checks 200, every acknowledged logout checks 401."""
    recs = json.load(open(recfile))
    users = [r["userid"] for r in recs if r["op"] == "create" and r["status"] == 201]
    logins = [r["key"] for r in recs if r["op"] == "login" and r["status"] == 201]
    attempted = {r["key"] for r in recs if r["op"] == "logout"}
    out_ok = [r["key"] for r in recs if r["op"] == "logout" and r["status"] == 204]
    in_doubt = [r["key"] for r in recs if r["op"] == "logout" and r["status"] != 204]
    live = [k for k in logins if k not in attempted]
    jobs = [("user", u) for u in users] + [("live", k) for k in live] \
        + [("out", k) for k in out_ok] + [("doubt", k) for k in in_doubt]
    got, lock, nxt = {}, threading.Lock(), iter(jobs)

    def worker():
        client = Client(port)
        while True:
            with lock:
                job = next(nxt, None)
            if job is None:
                return
            kind, x = job
            if kind == "user":
                st, _ = client.request("GET", f"/v1/users/{x}", bearer=token)
            else:
                st, _ = client.request("POST", "/v1/sessions/check", {"key": x})
            with lock:
                got.setdefault(kind, {}).setdefault(str(st), 0)
                got[kind][str(st)] += 1

    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()

    def count(op, status):
        return sum(1 for r in recs if r["op"] == op and r["status"] == status)

    res = {
        "acked_creates": len(users), "acked_logins": len(logins), "acked_logouts": len(out_ok),
        "users_found": got.get("user", {}).get("200", 0),
        "live_keys": len(live), "live_keys_ok": got.get("live", {}).get("200", 0),
        "logged_out_refused": got.get("out", {}).get("401", 0),
        "logout_unacked": len(in_doubt), "logout_unacked_now": got.get("doubt", {}),
        "noanswer": {op: count(op, "noanswer") for op in ("create", "login", "logout")},
        "refused": {op: count(op, "refused") for op in ("create", "login", "logout")},
        "verify_statuses": got,
    }
    res["lost"] = (res["acked_creates"] - res["users_found"]) + (len(live) - res["live_keys_ok"]) \
        + (len(out_ok) - res["logged_out_refused"])
    json.dump(res, open(out, "w"))


def slow_body(port, conns, cap, out):
    """Bodies that never complete: 'stalled' (15 of 1000 bytes, then nothing), 'trickle' (one
    byte a second), 'no body' (Content-Length 10, nothing sent). Seconds from the head to the
    answer's status line or to the close; "open" when neither came within CAP s."""
    head = b"POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    rows, lock = [], threading.Lock()

    def one(variant):
        s = socket.create_connection((HOST, port))
        s.sendall(head + (b"Content-Length: 10\r\n\r\n" if variant == "no body"
                          else b"Content-Length: 1000\r\n\r\n"))
        t0 = time.monotonic()
        if variant == "stalled":
            s.sendall(b'{"username": "a')
        outcome, buf = "open", b""
        while time.monotonic() - t0 < cap:
            s.settimeout(1.0)
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                if variant == "trickle":
                    try:
                        s.sendall(b"a")
                    except OSError:
                        outcome = "closed"
                        break
                continue
            except OSError:
                outcome = "closed"
                break
            if not chunk:
                outcome = "closed"
                break
            buf += chunk
            if b"\r\n" in buf:
                m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
                outcome = m.group(1).decode() if m else "garbage"
                break
        took = time.monotonic() - t0
        error = None
        if outcome.isdigit():  # the answer's error code and message, read for up to 1 s more
            s.settimeout(1.0)
            try:
                while b"}" not in buf.partition(b"\r\n\r\n")[2]:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
            except OSError:
                pass
            try:
                body = json.loads(buf.partition(b"\r\n\r\n")[2])
                error = f"{body.get('error')}: {body.get('message')}"
            except ValueError:
                pass
        s.close()
        with lock:
            rows.append({"variant": variant, "outcome": outcome, "secs": round(took, 3), "error": error})

    ts = [threading.Thread(target=one, args=(v,))
          for v in ("stalled", "trickle", "no body") for _ in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    json.dump(rows, open(out, "w"))


def hist(statuses):
    counts = {}
    for s in statuses:
        counts[str(s)] = counts.get(str(s), 0) + 1
    return counts


def fmt_hist(h):
    return ", ".join(f"{k} x {v}" for k, v in sorted(h.items())) or "-"


def report(bounds_file, meta_file, probes_file, wb_load_file, out_file, header_json):
    b = json.load(open(bounds_file))
    header = json.loads(header_json)
    meta = {}
    for line in open(meta_file):
        if line.strip():
            m = json.loads(line)
            meta.setdefault(m["scenario"], {}).update(m)
    probes = []
    for line in open(probes_file):
        p = line.split()
        if len(p) == 5:
            probes.append({"scenario": p[0], "class": p[1], "t": int(p[2]) / 1000,
                           "status": p[3], "secs": float(p[4])})
    bound = b["request_timeout_s"]
    limit = bound + header["slack_s"]
    checks = []

    def check(ok, text):
        checks.append({"ok": bool(ok), "text": text})

    res = {"meta": header, "bounds": b, "scenarios": {}}
    print()
    print(f"fault runs {header['date']} host {header['host']} ({header['cores']} cores), "
          f"{header['version']}; bounds: request_timeout {bound:g} s, lock_timeout "
          f"{b['lock_timeout_s']:g} s, statement_timeout {b['statement_timeout_s']:g} s, "
          f"connect_timeout {b['connect_timeout_s']:g} s (slack {header['slack_s']:+g} s)")

    classes = ["cached", "uncached", "login", "logout", "admin", "readyz"]
    for sc, title in (("lock", "table lock (LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE)"),
                      ("freeze", "frozen cluster (SIGSTOP of the postmaster and its children)")):
        if sc not in meta:
            continue
        end = meta[sc]["fault_s"]
        print(f"\n{'1' if sc == 'lock' else '2'}. {title}, {end:.1f} s; "
              f"requests started during it, and in the {meta[sc]['after_s']:g} s after "
              f"({header['probe_loops']} loop(s) per class, {header['probe_pause_s']:g} s pauses)")
        print(f"{'class':9} {'during: statuses':34} {'longest':>8}   {'after: statuses':24} {'longest':>8}")
        rows = {}
        for c in classes:
            mine = [p for p in probes if p["scenario"] == sc and p["class"] == c]
            dur = [p for p in mine if p["t"] < end]
            aft = [p for p in mine if p["t"] >= end]
            row = {"during": hist(p["status"] for p in dur),
                   "during_longest_s": max((p["secs"] for p in dur), default=None),
                   "after": hist(p["status"] for p in aft),
                   "after_longest_s": max((p["secs"] for p in aft), default=None)}
            if dur:
                first503 = [p["t"] for p in dur if p["status"] == "503"]
                row["first_503_at_s"] = min(first503) if first503 else None
                row["last_200_at_s"] = max((p["t"] for p in dur if p["status"] == "200"), default=None)
            rows[c] = row
            lg = row["during_longest_s"]
            la = row["after_longest_s"]
            print(f"{c:9} {fmt_hist(row['during']):34} {lg if lg is not None else float('nan'):>7.3f}s"
                  f"   {fmt_hist(row['after']):24} {la if la is not None else float('nan'):>7.3f}s")
        allp = [p for p in probes if p["scenario"] == sc]
        longest = max((p["secs"] for p in allp), default=0.0)
        bad = [p for p in allp if p["status"] in ("000", "500")]
        print(f"longest wait of any request: {longest:.3f} s; bound {bound:g} s")
        check(longest <= limit, f"{sc}: longest wait {longest:.3f} s <= request_timeout {bound:g} s")
        check(not bad, f"{sc}: no request unanswered or 500 ({len(bad)} were)")
        if sc == "lock":
            cached = rows["cached"]["during"]
            check(cached and set(cached) == {"200"},
                  f"lock: cached checks keep 200 during the lock ({fmt_hist(cached)})")
        else:
            # a freeze longer than the bound must be answered 503, not waited out
            edge = max(bound, limit)
            if end > edge:
                ready = rows["readyz"]["during"]
                check("503" in ready, f"freeze: /readyz says 503 during the freeze ({fmt_hist(ready)})")
                db = [p for p in allp
                      if p["t"] < end - edge and p["class"] in ("uncached", "login", "logout", "admin")]
                check(db and all(p["status"] == "503" for p in db),
                      f"freeze: database-bound requests started more than {bound:g} s before the thaw "
                      f"answer 503 UNAVAILABLE ({fmt_hist(hist(p['status'] for p in db))})")
        res["scenarios"][sc] = {"fault_s": end, "longest_s": longest, "classes": rows,
                                **{k: v for k, v in meta[sc].items() if k != "scenario"}}

    if "writebehind" in meta:
        m = meta["writebehind"]
        t0, t1 = m["t0_wall_ms"], m["t_end_wall_ms"]
        load = json.load(open(wb_load_file)) if wb_load_file != "-" else []
        during = [r for r in load if t0 <= r[0] < t1]
        after = [r for r in load if r[0] >= t1]
        probes_wb = [p for p in probes if p["scenario"] == "writebehind"]
        pd = [p for p in probes_wb if p["t"] < m["fault_s"]]
        adm = hist(p["status"] for p in pd if p["class"] == "admin")
        rdy = hist(p["status"] for p in pd if p["class"] == "readyz")
        longest = max((p["secs"] for p in probes_wb), default=0.0)
        row = {"fault_s": m["fault_s"], "refresh_interval": "1s",
               "max_blocked_refresh_updates": m["max_blocked_refresh"],
               "max_pool_connections_waiting_on_a_lock": m["max_blocked_pool"],
               "samples": m["samples"], "deadlocks": m["deadlocks"],
               "lock_timeouts_in_pg_log": m["lock_timeouts"],
               "daemon_refresh_warnings": m["refresh_warnings"],
               "admin_during": adm, "readyz_during": rdy, "probe_longest_s": longest,
               "auth_during": hist(r[1] for r in during),
               "auth_during_max_ms": max((r[2] for r in during), default=None),
               "auth_after": hist(r[1] for r in after),
               "auth_after_max_ms": max((r[2] for r in after), default=None),
               "auth_rate_per_s": round(len(load) / max(1e-9, (load[-1][0] - load[0][0]) / 1000), 1)
               if len(load) > 1 else 0}
        res["scenarios"]["writebehind"] = row
        print(f"\n3. expiry write-behind under a {m['fault_s']:.1f} s lock, refresh_interval 1s, "
              f"8 hot sessions at {row['auth_rate_per_s']:g} checks/s")
        print(f"   blocked refresh UPDATEs (max of {m['samples']} samples every 0.5 s): "
              f"{m['max_blocked_refresh']}; pool connections waiting on a lock: max {m['max_blocked_pool']}")
        print(f"   'deadlock detected' in the PostgreSQL log, from the lock to {m['after_s']:g} s after COMMIT: "
              f"{m['deadlocks']}; lock timeouts: {m['lock_timeouts']}; daemon refresh warnings: "
              f"{m['refresh_warnings']}")
        print(f"   during the lock: admin GET {fmt_hist(adm)}; /readyz {fmt_hist(rdy)}; longest "
              f"{longest:.3f} s; /v1/auth {fmt_hist(row['auth_during'])}, max "
              f"{row['auth_during_max_ms']} ms; after: /v1/auth {fmt_hist(row['auth_after'])}")
        check(m["max_blocked_refresh"] <= 1,
              f"writebehind: at most one refresh flush blocked at a time ({m['max_blocked_refresh']})")
        check(m["deadlocks"] == 0, f"writebehind: no deadlock during the lock or after COMMIT ({m['deadlocks']})")
        check("503" not in adm and "503" not in rdy,
              f"writebehind: admin and /readyz never 503 during the lock "
              f"({adm.get('503', 0)} + {rdy.get('503', 0)})")
        check(set(row["auth_during"]) <= {"200"}, "writebehind: cached checks keep 200 during the lock")
        check(longest <= limit, f"writebehind: longest wait {longest:.3f} s <= {bound:g} s")

    if "kill" in meta:
        runs = meta["kill"]["runs"]
        print(f"\n4. kill -9 of the daemon under create/login/logout load ({len(runs)} runs, "
              f"{meta['kill']['threads']} threads, cheap argon2)")
        print(f"{'run':>3} {'creates':>8} {'logins':>7} {'logouts':>8} {'users ok':>11} "
              f"{'live ok':>11} {'out refused':>12} {'lost':>5} {'no answer c/l/o':>16} "
              f"{'unacked logout':>15} {'ready after':>12}")
        tot = {"acked_creates": 0, "acked_logins": 0, "acked_logouts": 0, "lost": 0}
        for i, r in enumerate(runs, 1):
            na = r["noanswer"]
            print(f"{i:>3} {r['acked_creates']:>8} {r['acked_logins']:>7} {r['acked_logouts']:>8} "
                  f"{r['users_found']:>5}/{r['acked_creates']:<5} {r['live_keys_ok']:>5}/{r['live_keys']:<5} "
                  f"{r['logged_out_refused']:>5}/{r['acked_logouts']:<6} {r['lost']:>5} "
                  f"{na['create']:>6}/{na['login']}/{na['logout']:<6} {r['logout_unacked']:>15} "
                  f"{r['ready_after_s']:>11.2f}s")
            for k in tot:
                tot[k] += r[k]
        print(f"total: {tot['acked_creates']} acknowledged creates, {tot['acked_logins']} logins, "
              f"{tot['acked_logouts']} logouts; lost {tot['lost']}")
        res["scenarios"]["kill"] = {"runs": runs, "total": tot, **{
            k: v for k, v in meta["kill"].items() if k not in ("scenario", "runs")}}
        check(tot["lost"] == 0 and tot["acked_logins"] > 0,
              f"kill: nothing acknowledged is lost ({tot['lost']} of "
              f"{tot['acked_creates'] + tot['acked_logins'] + tot['acked_logouts']})")

    if "slowbody" in meta:
        rows = json.load(open(meta["slowbody"]["file"]))
        print(f"\n5. request bodies that never complete ({meta['slowbody']['conns']} connections each)")
        summ = {}
        for v in ("stalled", "trickle", "no body"):
            mine = [r for r in rows if r["variant"] == v]
            summ[v] = {"outcomes": hist(r["outcome"] for r in mine),
                       "min_s": min((r["secs"] for r in mine), default=None),
                       "max_s": max((r["secs"] for r in mine), default=None)}
            summ[v]["errors"] = hist(r["error"] for r in mine if r["error"])
            print(f"   {v:8} {fmt_hist(summ[v]['outcomes']):30} after {summ[v]['min_s']:.2f}"
                  f"-{summ[v]['max_s']:.2f} s  {fmt_hist(summ[v]['errors'])}")
        res["scenarios"]["slowbody"] = summ
        worst = max((r["secs"] for r in rows), default=0.0)
        still = sum(1 for r in rows if r["outcome"] == "open")
        check(still == 0 and worst <= limit,
              f"slowbody: every slow body answered or closed within {bound:g} s "
              f"(longest {worst:.2f} s, {still} still open)")

    print("\nverdict:")
    for c in checks:
        print(f"  {'PASS' if c['ok'] else 'FAIL'}  {c['text']}")
    res["checks"] = checks
    res["ok"] = all(c["ok"] for c in checks)
    json.dump(res, open(out_file, "w"), indent=1)
    print(f"raw results: {out_file}")
    sys.exit(0 if res["ok"] else 1)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "bounds":
        bounds()
    elif cmd == "auth-load":
        auth_load(int(args[0]), args[1], float(args[2]), float(args[3]), args[4])
    elif cmd == "kill-load":
        kill_load(int(args[0]), args[1], float(args[2]), int(args[3]), args[4], args[5], args[6])
    elif cmd == "kill-verify":
        kill_verify(int(args[0]), args[1], args[2], args[3])
    elif cmd == "slow-body":
        slow_body(int(args[0]), int(args[1]), float(args[2]), args[3])
    elif cmd == "report":
        report(*args)
    else:
        sys.exit(f"unknown command {cmd}")
PYEOF

now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# probe CLASS ARG: one request of a class on a fresh connection; prints "status seconds".
# Keys and passwords go to curl on stdin, never on its command line.
probe() {
    local class=$1 arg=${2:-}
    local -a c=(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time "$PROBE_MAX")
    case $class in
        cached) printf 'header = "Authorization: Bearer %s"\n' "$arg" | "${c[@]}" -K - "$URL/v1/auth" ;;
        uncached) printf '{"key":"%s"}' "$arg" | "${c[@]}" -H 'Content-Type: application/json' \
            --data-binary @- "$URL/v1/sessions/check" ;;
        login) printf '{"username":"%s","password":"%s"}' "$arg" "$BENCH_PASSWORD" \
            | "${c[@]}" -H 'Content-Type: application/json' --data-binary @- "$URL/v1/login" ;;
        logout) printf 'header = "Authorization: Bearer %s"\n' "$arg" | "${c[@]}" -K - -X POST "$URL/v1/logout" ;;
        admin) printf 'header = "Authorization: Bearer %s"\n' "$BENCH_API_TOKEN" | "${c[@]}" -K - "$URL/v1/users/$arg" ;;
        readyz) "${c[@]}" "$URL/readyz" ;;
    esac
}

# probe_loop SCENARIO CLASS T0_MS UNTIL_MS PAUSE ARG...: requests of one class one after the
# other (PAUSE s apart, each with the next ARG) until UNTIL_MS; one line each in $PROBES.
probe_loop() {
    local sc=$1 class=$2 t0=$3 until=$4 pause=$5
    shift 5
    local -a args=("${@:-}")
    local i=0 start r
    while :; do
        start=$(now_ms)
        ((start < until)) || break
        r="$(probe "$class" "${args[i % ${#args[@]}]}")" || true
        echo "$sc $class $((start - t0)) ${r:-000 0}" >>"$PROBES"
        i=$((i + 1))
        sleep "$pause"
    done
}

declare -a LOOP_PIDS=()
# probes SCENARIO T0_MS UNTIL_MS PAUSE CLASS...: FAULT_PROBE_LOOPS probe loops per class, in the
# background; each loop of a class gets its own slice of the class's 600 keys
probes() {
    local sc=$1 t0=$2 until=$3 pause=$4 class off j n=$((600 / FAULT_PROBE_LOOPS))
    shift 4
    LOOP_PIDS=()
    for class in "$@"; do
        for ((j = 0; j < FAULT_PROBE_LOOPS; j++)); do
            off=$((KEY_BASE[$sc] + j * n))
            case $class in
                cached) probe_loop "$sc" cached "$t0" "$until" "$pause" "${HOT[$sc]}" & ;;
                uncached) probe_loop "$sc" uncached "$t0" "$until" "$pause" "${KEYS[@]:off:n}" & ;;
                logout) probe_loop "$sc" logout "$t0" "$until" "$pause" "${KEYS[@]:off+600:n}" & ;;
                login) probe_loop "$sc" login "$t0" "$until" "$pause" "${LOGIN_USERS[@]:j:100}" & ;;
                admin) probe_loop "$sc" admin "$t0" "$until" "$pause" "$ADMIN_UID" & ;;
                readyz) probe_loop "$sc" readyz "$t0" "$until" "$pause" & ;;
            esac
            LOOP_PIDS+=("$!")
            BENCH_BG_PIDS+=("$!")
        done
    done
}
wait_probes() {
    local p
    for p in "${LOOP_PIDS[@]}"; do wait "$p" || true; done
    untrack "${LOOP_PIDS[@]}"
}

# hold_lock SECONDS: psql holds ACCESS EXCLUSIVE on sessions for SECONDS, in the background;
# returns once the lock is granted (LOCK_PID: psql)
hold_lock() {
    sql -c "BEGIN; LOCK TABLE $SCHEMA.sessions IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep($1); COMMIT;" \
        >/dev/null &
    LOCK_PID=$!
    BENCH_BG_PIDS+=("$LOCK_PID")
    local _
    for _ in $(seq 1 100); do
        if [[ "$(sql -c "select count(*) from pg_locks l join pg_class c on c.oid = l.relation
                 where c.relname = 'sessions' and l.mode = 'AccessExclusiveLock' and l.granted")" == 1 ]]; then
            return 0
        fi
        sleep 0.05
    done
    die "the lock on sessions was not granted within 5 s"
}

# A fresh cached session per scenario: a seeded key, checked once just before the fault (its
# cache entry is then younger than session.cache_max_age for the whole window).
warm() {
    local r
    r="$(probe cached "$1")"
    [[ "$r" == 200* ]] || die "warming a hot session answered ${r%% *}"
}

daemon_env=(PGUSERS_LOG__FORMAT=human)
daemon_start "${daemon_env[@]}"
VERSION="$("$BENCH_BIN" --version)"
env PGUSERS_CONNECTION_STRING="$BENCH_DB_URL" PGUSERS_API_TOKENS="$BENCH_API_TOKEN" \
    "$BENCH_BIN" check-config 2>/dev/null | python3 "$PY" bounds >"$BENCH_TMP/bounds.json"
BOUND_S="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["request_timeout_s"])' "$BENCH_TMP/bounds.json")"
log "bounds: $(cat "$BENCH_TMP/bounds.json")"
# curl gives up well after any bound, so that a hang is measured, not cut short at the bound
PROBE_MAX=$((FAULT_LOCK_SECS > FAULT_FREEZE_SECS ? FAULT_LOCK_SECS + 10 : FAULT_FREEZE_SECS + 10))

seed_users 100
seed_sessions 1 4000 100
write_keys 1 4000 "$BENCH_TMP/keys.txt"
mapfile -t KEYS <"$BENCH_TMP/keys.txt"
ADMIN_UID="$(sql -c "select userid from users where username = 'u1'")"
mapfile -t LOGIN_USERS < <(seq 1 100 | sed 's/^/u/')
# keys 1-9 hot (cached), then 1200 per probed scenario: 600 uncached checks, 600 logouts
declare -A HOT=([lock]="${KEYS[0]}" [freeze]="${KEYS[1]}")
declare -A KEY_BASE=([lock]=10 [freeze]=1210 [writebehind]=2410)
ALL_CLASSES=(cached uncached login logout admin readyz)

if has lock; then
    log "1. table lock on sessions for ${FAULT_LOCK_SECS}s, every class probed"
    warm "${HOT[lock]}"
    hold_lock "$FAULT_LOCK_SECS"
    t0=$(now_ms)
    probes lock "$t0" $((t0 + (FAULT_LOCK_SECS + FAULT_AFTER_SECS) * 1000)) "$FAULT_PROBE_PAUSE" "${ALL_CLASSES[@]}"
    wait "$LOCK_PID" || die "the lock holder failed"
    untrack "$LOCK_PID"
    t1=$(now_ms)
    wait_probes
    printf '{"scenario":"lock","fault_s":%s,"after_s":%s}\n' \
        "$(((t1 - t0) / 1000)).$(printf '%03d' $(((t1 - t0) % 1000)))" "$FAULT_AFTER_SECS" >>"$META"
fi

if has freeze; then
    log "2. the whole cluster SIGSTOPped for ${FAULT_FREEZE_SECS}s, every class probed"
    warm "${HOT[freeze]}"
    PM="$(head -1 "$PG_SOCKDIR/data/postmaster.pid")"
    [[ "$PM" =~ ^[0-9]+$ ]] || die "no postmaster pid in $PG_SOCKDIR/data/postmaster.pid"
    # the postmaster first, so that it forks nothing new; then its children
    FROZEN_PIDS=("$PM")
    kill -STOP "$PM"
    mapfile -t -O 1 FROZEN_PIDS < <(pgrep -P "$PM")
    kill -STOP "${FROZEN_PIDS[@]:1}"
    t0=$(now_ms)
    probes freeze "$t0" $((t0 + (FAULT_FREEZE_SECS + FAULT_AFTER_SECS) * 1000)) "$FAULT_PROBE_PAUSE" "${ALL_CLASSES[@]}"
    sleep "$FAULT_FREEZE_SECS"
    frozen=${#FROZEN_PIDS[@]}
    thaw
    t1=$(now_ms)
    log "thawed $frozen processes"
    wait_probes
    printf '{"scenario":"freeze","fault_s":%s,"after_s":%s}\n' \
        "$(((t1 - t0) / 1000)).$(printf '%03d' $(((t1 - t0) % 1000)))" "$FAULT_AFTER_SECS" >>"$META"
fi

WB_LOAD="-"
if has writebehind; then
    log "3. write-behind: refresh_interval=1s, 8 hot sessions at ${FAULT_WB_RATE}/s, ${FAULT_WB_LOCK_SECS}s lock"
    daemon_stop
    daemon_start "${daemon_env[@]}" PGUSERS_SESSION__REFRESH_INTERVAL=1s
    printf '%s\n' "${KEYS[@]:2:8}" >"$BENCH_TMP/hot8.txt"
    WB_LOAD="$BENCH_TMP/wb_load.json"
    lead=3
    python3 "$PY" auth-load "$BENCH_PORT" "$BENCH_TMP/hot8.txt" "$FAULT_WB_RATE" \
        $((lead + FAULT_WB_LOCK_SECS + FAULT_WB_AFTER_SECS + 1)) "$WB_LOAD" &
    load_pid=$!
    BENCH_BG_PIDS+=("$load_pid")
    sleep "$lead"
    pg_lines0=$(wc -l <"$BENCH_TMP/postgres.log")
    d_lines0=$(wc -l <"$DAEMON_LOG")
    hold_lock "$FAULT_WB_LOCK_SECS"
    t0=$(now_ms)
    probes writebehind "$t0" $((t0 + FAULT_WB_LOCK_SECS * 1000)) 0.5 admin readyz
    max_refresh=0 max_pool=0 samples=0
    while kill -0 "$LOCK_PID" 2>/dev/null; do
        read -r n_refresh n_pool < <(sql -F ' ' -c "select
              count(*) filter (where query like '%UPDATE sessions s SET expires_at%'), count(*)
            from pg_stat_activity where wait_event_type = 'Lock' and application_name = 'pgusers'") || true
        samples=$((samples + 1))
        ((${n_refresh:-0} > max_refresh)) && max_refresh=$n_refresh
        ((${n_pool:-0} > max_pool)) && max_pool=$n_pool
        sleep 0.5
    done
    wait "$LOCK_PID" || die "the lock holder failed"
    untrack "$LOCK_PID"
    t1=$(now_ms)
    wait_probes
    log "lock released; ${FAULT_WB_AFTER_SECS}s of load after COMMIT"
    wait "$load_pid" || die "the /v1/auth load failed"
    untrack "$load_pid"
    deadlocks=$(tail -n +$((pg_lines0 + 1)) "$BENCH_TMP/postgres.log" | grep -c 'deadlock detected' || true)
    lock_timeouts=$(tail -n +$((pg_lines0 + 1)) "$BENCH_TMP/postgres.log" | grep -c 'lock timeout' || true)
    refresh_warnings=$(tail -n +$((d_lines0 + 1)) "$DAEMON_LOG" | grep -c 'could not write expiry refreshes' || true)
    printf '{"scenario":"writebehind","fault_s":%s,"after_s":%s,"t0_wall_ms":%s,"t_end_wall_ms":%s,"max_blocked_refresh":%s,"max_blocked_pool":%s,"samples":%s,"deadlocks":%s,"lock_timeouts":%s,"refresh_warnings":%s}\n' \
        "$(((t1 - t0) / 1000)).$(printf '%03d' $(((t1 - t0) % 1000)))" "$FAULT_WB_AFTER_SECS" "$t0" "$t1" \
        "$max_refresh" "$max_pool" "$samples" "$deadlocks" "$lock_timeouts" "$refresh_warnings" >>"$META"
fi

if has kill; then
    log "4. kill -9 under create/login/logout load, $FAULT_KILL_RUNS runs"
    kill_env=("${daemon_env[@]}" PGUSERS_PASSWORD__ARGON2_MEMORY_KIB=64 PGUSERS_PASSWORD__ARGON2_ITERATIONS=1)
    daemon_stop
    daemon_start "${kill_env[@]}"
    runs=()
    for run in $(seq 1 "$FAULT_KILL_RUNS"); do
        recs="$BENCH_TMP/kill.$run.json"
        python3 "$PY" kill-load "$BENCH_PORT" "$BENCH_API_TOKEN" "$FAULT_KILL_LOAD_SECS" \
            "$FAULT_KILL_THREADS" "k${run}r$RANDOM" "faults-password-$RANDOM" "$recs" &
        load_pid=$!
        BENCH_BG_PIDS+=("$load_pid")
        sleep "$FAULT_KILL_AT"
        kill -KILL "$DAEMON_PID"
        wait "$DAEMON_PID" 2>/dev/null || true
        DAEMON_PID=""
        sleep "$FAULT_KILL_DOWN"
        t0=$(now_ms)
        daemon_start "${kill_env[@]}"
        t1=$(now_ms)
        wait "$load_pid" || die "the kill -9 load failed"
        untrack "$load_pid"
        python3 "$PY" kill-verify "$BENCH_PORT" "$BENCH_API_TOKEN" "$recs" "$recs.verified"
        rm -f "$recs"
        runs+=("$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["ready_after_s"]=int(sys.argv[2])/1000; print(json.dumps(r))' \
            "$recs.verified" $((t1 - t0)))")
        log "run $run: $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["acked_creates"], "creates,", r["acked_logins"], "logins,", r["acked_logouts"], "logouts acknowledged;", r["lost"], "lost")' "${runs[-1]}")"
    done
    printf '{"scenario":"kill","threads":%s,"load_s":%s,"kill_at_s":%s,"down_s":%s,"runs":[%s]}\n' \
        "$FAULT_KILL_THREADS" "$FAULT_KILL_LOAD_SECS" "$FAULT_KILL_AT" "$FAULT_KILL_DOWN" \
        "$(IFS=,; echo "${runs[*]}")" >>"$META"
fi

if has slowbody; then
    log "5. request bodies that never complete, $FAULT_SLOW_CONNS connections per variant"
    python3 "$PY" slow-body "$BENCH_PORT" "$FAULT_SLOW_CONNS" "$(python3 -c "print($BOUND_S + 10)")" \
        "$BENCH_TMP/slow.json"
    printf '{"scenario":"slowbody","conns":%s,"file":"%s"}\n' "$FAULT_SLOW_CONNS" "$BENCH_TMP/slow.json" >>"$META"
fi

mkdir -p "$BENCH_DIR/results"
OUT="$BENCH_DIR/results/$(date -u +%Y%m%dT%H%M%SZ)-$(hostname -s)-faults.json"
header="$(printf '{"date":"%s","host":"%s","cores":%s,"version":"%s","binary":"%s","slack_s":%s,"scenarios":"%s","probe_loops":%s,"probe_pause_s":%s}' \
    "$(date -u +%FT%TZ)" "$(hostname -s)" "$(nproc)" "$VERSION" "$BENCH_BIN" "$FAULT_SLACK" "$FAULT_SCENARIOS" \
    "$FAULT_PROBE_LOOPS" "$FAULT_PROBE_PAUSE")"
umask 022
python3 "$PY" report "$BENCH_TMP/bounds.json" "$META" "$PROBES" "$WB_LOAD" "$OUT" "$header"
