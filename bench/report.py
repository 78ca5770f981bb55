"""Result handling for bench/run (standard library only).

  report.py pgbench PGBENCH_STDOUT LOGDIR   -> JSON with tps and latency percentiles (from -l logs)
  report.py report RESULTS.jsonl OUT.json META_JSON -> prints the table, writes OUT.json
  report.py table OUT.json                  -> prints the table of a saved result file
"""
import glob
import json
import os
import re
import sys


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0
    k = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def pgbench(stdout_path, logdir):
    text = open(stdout_path).read()
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text) or re.search(
        r"tps = ([0-9.]+)", text)
    tps = float(m.group(1)) if m else 0.0
    m = re.search(r"latency average = ([0-9.]+) ms", text)
    avg = float(m.group(1)) if m else None
    m = re.search(r"number of failed transactions: (\d+)", text)
    failed = int(m.group(1)) if m else 0
    lat = []
    for f in glob.glob(os.path.join(logdir, "pgb*")):
        with open(f) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 3:
                    lat.append(int(parts[2]))
    lat.sort()
    out = {"tps": tps, "latency_avg_ms": avg, "failed": failed, "transactions_logged": len(lat),
           "latency_us": {"p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99),
                          "p999": pct(lat, 99.9), "max": lat[-1] if lat else 0}}
    print(json.dumps(out))


def wrk_row(name, rec):
    d = rec["data"]
    secs = d["duration_us"] / 1e6 if d["duration_us"] else 1
    status = d.get("status", {})
    if d.get("status_counted"):
        non2xx = sum(v for k, v in status.items() if not k.startswith("2"))
    else:
        non2xx = d["errors"]["status"]
    sock = sum(d["errors"][k] for k in ("connect", "read", "write", "timeout"))
    return {
        "scenario": name,
        "rps": d["requests"] / secs,
        "p50_ms": d["latency_us"]["p50"] / 1000.0,
        "p99_ms": d["latency_us"]["p99"] / 1000.0,
        "errors": non2xx + sock,
        "non2xx": non2xx,
        "socket_errors": sock,
        "status": status,
        "connections": rec.get("connections"),
        "requests": d["requests"],
        "db_xacts_per_req": (rec["db_xacts"] / d["requests"]) if rec.get("db_xacts") is not None
        and d["requests"] else None,
    }


LABELS = {
    "healthz": "1. GET /healthz",
    "auth_cached": "2. GET /v1/auth, cached keys",
    "auth_group_cached": "2g. GET /v1/auth?group=ops, cached",
    "auth_uncached_first": "3a. /v1/auth uncached, expiry write due",
    "auth_uncached": "3. GET /v1/auth, uncached keys",
    "check_uncached": "3b. POST /v1/sessions/check, uncached",
    "check_cached": "4. POST /v1/sessions/check, cached",
    "auth_cached_defaults": "2d. /v1/auth cached, default settings",
    "check_cached_defaults": "4d. check cached, defaults, 15-30 s on",
    "login_single": "5a. POST /v1/login, 1 connection",
    "login": "5b. POST /v1/login",
    "create_user": "5c. POST /v1/users",
    "flood_check_alone": "6a. check (cached), no flood",
    "flood_check": "6b. check (cached) during login flood",
    "flood_login": "6c. the login flood itself",
    "pgbench_S": "7. pgbench -S -M prepared",
}
ORDER = ["healthz", "auth_cached", "auth_group_cached", "auth_uncached_first", "auth_uncached", "check_uncached", "check_cached",
         "auth_cached_defaults", "check_cached_defaults", "login_single", "login", "create_user",
         "flood_check_alone", "flood_check", "flood_login", "pgbench_S"]


def pgbench_row(name, rec):
    d = rec["data"]
    return {"scenario": name, "rps": d["tps"], "p50_ms": d["latency_us"]["p50"] / 1000.0,
            "p99_ms": d["latency_us"]["p99"] / 1000.0, "errors": d["failed"],
            "connections": rec.get("connections")}


def median(vals):
    vals = sorted(vals)
    n = len(vals)
    return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2.0


def merge_rounds(rounds):
    """One row for a scenario run in several rounds: the median round's figures, the sums of
    errors and requests, and each round's own figures under "rounds"."""
    if len(rounds) == 1:
        return rounds[0]
    row = dict(rounds[0])
    for f in ("rps", "p50_ms", "p99_ms"):
        row[f] = median([r[f] for r in rounds])
    row["errors"] = sum(r["errors"] for r in rounds)
    if all(r.get("requests") for r in rounds):
        row["requests"] = sum(r["requests"] for r in rounds)
        if all(r.get("db_xacts_per_req") is not None for r in rounds):
            row["db_xacts_per_req"] = sum(r["db_xacts_per_req"] * r["requests"] for r in rounds) / row["requests"]
    row["rounds"] = [{"round": r.get("round"), "rps": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]}
                     for r in rounds]
    return row


def build(records, meta):
    runs = {}
    extra = {}
    for rec in records:
        name, kind = rec["scenario"], rec["kind"]
        if kind in ("wrk", "pgbench"):
            row = wrk_row(name, rec) if kind == "wrk" else pgbench_row(name, rec)
            row["round"] = rec.get("round")
            runs.setdefault(name, []).append(row)
        else:
            extra[name] = rec
    rows = {name: merge_rounds(rs) for name, rs in runs.items()}
    ratios = {}

    def ratio(key, a, b, target, better="ge"):
        """a / b, as the median of the per-round ratios when both ran in the same rounds."""
        ra, rb = runs.get(a, []), runs.get(b, [])
        field = "p99_ms" if better == "le" else "rps"
        by_round = {r["round"]: r[field] for r in rb if r.get("round")}
        paired = [r[field] / by_round[r["round"]] for r in ra if by_round.get(r.get("round"))]
        if len(paired) > 1:
            v = median(paired)
        elif ra and rb and rows[b][field]:
            v = rows[a][field] / rows[b][field]
        else:
            return
        ok = None if target is None else (v >= target if better == "ge" else v <= target)
        ratios[key] = {"value": v, "target": target, "met": ok, "sense": better,
                       "per_round": paired if len(paired) > 1 else None}

    def bound(key, name, field, limit):
        if name in rows:
            v = rows[name][field]
            ratios[key] = {"value": v, "target": limit, "met": v <= limit, "sense": "le", "per_round": None}

    ratio("cached auth / healthz", "auth_cached", "healthz", 0.85)
    bound("cached auth p99 (ms)", "auth_cached", "p99_ms", 5.0)
    ratio("cached auth with a group check / without", "auth_group_cached", "auth_cached", 0.95)
    ratio("cached check / healthz (no target)", "check_cached", "healthz", None)
    ratio("cached auth, default settings / healthz", "auth_cached_defaults", "healthz", 0.85)
    ratio("uncached auth / pgbench -S", "auth_uncached", "pgbench_S", 0.5)
    ratio("uncached check / pgbench -S", "check_uncached", "pgbench_S", 0.5)
    ratio("check p99 during flood / without", "flood_check", "flood_check_alone", 2.0, "le")
    hashing = extra.get("hashing")
    limit = None
    if hashing:
        h = hashing["data"]["argon2id"]
        threads = hashing["hash_threads"]
        limit = threads / h["median_s"]
        for key, name in (("login", "login"), ("create_user", "create_user")):
            if name in rows:
                v = rows[name]["rps"] / limit
                ratios[f"{key} / (hash threads / one hash time)"] = {
                    "value": v, "target": 0.8, "met": v >= 0.8, "sense": "ge", "per_round": None}
    mem = extra.get("memory")
    memory = None
    if mem:
        d = mem["data"]
        memory = {"sessions": d["sessions"], "rss_after_mb": d["rss_after_kb"] / 1024.0,
                  "rss_before_mb": d["rss_before_kb"] / 1024.0,
                  "bytes_per_session": (d["rss_after_kb"] - d["rss_before_kb"]) * 1024.0 / d["sessions"],
                  "walk_seconds": d["walk_seconds"],
                  "recheck_db_xacts_per_req": d["recheck_db_xacts"] / max(1, d["recheck"]["requests"]),
                  "target_mb": 600, "met": d["rss_after_kb"] / 1024.0 < 600}
    return {"meta": meta, "rows": [rows[n] for n in ORDER if n in rows], "ratios": ratios,
            "hashing": hashing and {**hashing["data"], "hash_threads": hashing["hash_threads"],
                                    "limit_per_s": limit},
            "memory": memory, "raw": records}


def print_table(res):
    m = res["meta"]
    print()
    print(f"pgusers bench  {m.get('date')}  host {m.get('host')}  {m.get('cores')} cores "
          f"({m.get('cpu', '')}), {m.get('mem_kb', 0) // 1048576} GiB  git {m.get('git')}")
    print(f"load average at start {m.get('loadavg_start')}, at end {m.get('loadavg_end')} "
          f"(the machine is shared: other processes compete for the cores)")
    print(f"users {m.get('users')}, sessions {m.get('sessions')}, wrk {m.get('connections')} connections, "
          f"{m.get('threads')} threads, {m.get('duration')} per run; uncached = {m.get('uncached_mode')}")
    if m.get("rounds"):
        print(f"healthz / auth / check and uncached auth / check / pgbench -S ran in turn, {m['rounds']} rounds of "
              f"{m.get('round_duration', m.get('duration'))}: figures are the median round, ratios the median of "
              f"the per-round ratios")
    if m.get("cached_env"):
        print(f"scenarios 1, 2, 4-6 with {m['cached_env']}; 2d/4d with the defaults (refresh 60 s, cache_max_age 30 s)")
    print()
    hdr = (f"{'scenario':42} {'conns':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
           f"{'db tx/req':>9}  rounds (req/s)")
    print(hdr)
    print("-" * len(hdr))
    for r in res["rows"]:
        dbx = r.get("db_xacts_per_req")
        spread = ""
        if r.get("rounds"):
            spread = " ".join(f"{x['rps'] / 1000:.1f}k" for x in r["rounds"])
        print(f"{LABELS.get(r['scenario'], r['scenario']):42} {r.get('connections') or '':>5} {r['rps']:>10,.0f} "
              f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7} "
              f"{'' if dbx is None else f'{dbx:.3f}':>9}  {spread}")
    h = res.get("hashing")
    if h:
        a = h["argon2id"]
        print()
        print(f"argon2id m={a['m_kib']} KiB t={a['t']} p={a['p']}: one hash {a['median_s'] * 1000:.1f} ms "
              f"({a['impl']}) = {a['hashes_per_s_per_core']:.1f} hashes/s per core; "
              f"hash threads {h['hash_threads']} -> limit {h['limit_per_s']:.1f}/s, "
              f"target 0.8 x limit = {0.8 * h['limit_per_s']:.1f}/s")
    mem = res.get("memory")
    if mem:
        print(f"memory: {mem['sessions']:,} cached sessions -> RSS {mem['rss_after_mb']:.0f} MB "
              f"(before {mem['rss_before_mb']:.0f} MB), {mem['bytes_per_session']:.0f} bytes per session; "
              f"walk {mem['walk_seconds']:.0f} s; re-check db tx/req {mem['recheck_db_xacts_per_req']:.3f}; "
              f"target < 600 MB: {'met' if mem['met'] else 'NOT met'}")
    if res["ratios"]:
        print()
        print("ratios (target):")
        for k, v in res["ratios"].items():
            sign = ">=" if v["sense"] == "ge" else "<="
            per = v.get("per_round")
            rounds = f"  rounds: {' '.join(f'{x:.2f}' for x in per)}" if per else ""
            verdict = "informational" if v["target"] is None else \
                f"{sign} {v['target']}: {'met' if v['met'] else 'NOT met'}"
            print(f"  {k:46} {v['value']:8.3f}  ({verdict}){rounds}")
    print()


def main():
    mode = sys.argv[1]
    if mode == "pgbench":
        pgbench(sys.argv[2], sys.argv[3])
    elif mode == "report":
        records = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
        meta = json.loads(sys.argv[4])
        res = build(records, meta)
        with open(sys.argv[3], "w") as f:
            json.dump(res, f, indent=1)
        print_table(res)
        print(f"raw results: {sys.argv[3]}")
    elif mode == "line":
        d = json.loads(sys.argv[2])
        secs = d["duration_us"] / 1e6 or 1
        lat = d["latency_us"]
        print(f"{d['requests'] / secs:,.0f} req/s, p50 {lat['p50'] / 1000:.2f} ms, "
              f"p99 {lat['p99'] / 1000:.2f} ms, status {d.get('status')}, errors {d['errors']}")
    elif mode == "table":
        print_table(json.load(open(sys.argv[2])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
