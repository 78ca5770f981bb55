"""Print the comparison table of bench/compare_original.sh and write the result file.

  compare_report.py COMPARE.json OUT.json
"""
import json
import sys

OPS = [("create_user", "POST /v1/users"), ("validate_user", "POST /v1/login"),
       ("check_key", "POST /v1/sessions/check"), ("find_user", "GET /v1/users?username=")]


def wrk_rate(d):
    return d["requests"] / (d["duration_us"] / 1e6)


def wrk_errors(d):
    st = d.get("status", {})
    non2xx = sum(v for k, v in st.items() if not k.startswith("2")) if d.get("status_counted") else d["errors"]["status"]
    return non2xx + sum(d["errors"][k] for k in ("connect", "read", "write", "timeout"))


def main():
    res = json.load(open(sys.argv[1]))
    m = res["meta"]
    orig, idx, http, wrk = res["original"], res.get("original_indexed") or {}, res["pgusers_http"], res["pgusers_wrk"]
    concs = m["concurrency"].split(",")
    print()
    print(f"original pgusers {m['original_version']} (PyPI, psycopg 3) vs pgusers daemon — {m['date']}, "
          f"host {m['host']}, {m['cores']} cores; {m['users']} users, {m['sessions']} sessions; "
          f"{m['duration_s']} s per figure; clients are processes")
    hdr = (f"{'operation':15} {'c':>3} {'original/s':>11} {'orig+idx/s':>11} {'pgusers py/s':>13} "
           f"{'pgusers wrk/s':>14} {'py ratio':>9} {'wrk ratio':>10}")
    print(hdr)
    print("-" * len(hdr))
    summary = {}
    for op, ep in OPS:
        for c in concs:
            o = orig.get(op, {}).get(c)
            oi = idx.get(op, {}).get(c)
            h = http.get(op, {}).get(c)
            w = wrk.get(c, {}).get(op)
            orate = o["ops_per_s"] if o else None
            base = max(orate or 0, (oi or {}).get("ops_per_s", 0)) or None  # best original figure
            hrate = h["ops_per_s"] if h else None
            wrate = wrk_rate(w) if w else None
            r1 = hrate / orate if hrate and orate else None
            r2 = wrate / orate if wrate and orate else None
            summary[f"{op}@{c}"] = {"original": orate, "original_indexed": oi and oi["ops_per_s"],
                                    "pgusers_python_client": hrate, "pgusers_wrk": wrate,
                                    "ratio_python_client": r1, "ratio_wrk": r2,
                                    "ratio_wrk_vs_best_original": wrate / base if wrate and base else None,
                                    "errors": {"original": o and o["errors"], "pgusers_python": h and h["errors"],
                                               "pgusers_wrk": w and wrk_errors(w)}}
            f = lambda v: f"{v:,.1f}" if v is not None else "-"
            g = lambda v: f"{v:,.1f}x" if v is not None else "-"
            print(f"{op:15} {c:>3} {f(orate):>11} {f(oi and oi['ops_per_s']):>11} {f(hrate):>13} "
                  f"{f(wrate):>14} {g(r1):>9} {g(r2):>10}")
    print("(ratio = pgusers / original; 'py' = the same Python client processes over HTTP keep-alive, "
          "'wrk' = wrk with the same number of connections; orig+idx = the original with indexes on "
          "sessions.key and users.username, which its schema lacks)")
    hsh = res["hashing"]
    a, p = hsh["argon2id"], hsh["pbkdf2_sha512_100k"]
    ht = m["hash_threads"]
    print()
    print(f"hashing: original = PBKDF2-HMAC-SHA512, 100,000 iterations, 16-byte salt: {p['median_s'] * 1000:.1f} ms "
          f"per hash ({p['hashes_per_s_per_core']:.1f}/s per core); pgusers = argon2id m=19456 KiB t=2 p=1 "
          f"(memory-hard): {a['median_s'] * 1000:.1f} ms in libargon2 ({a['hashes_per_s_per_core']:.1f}/s per core)")
    cores = m["cores"]
    per_core = {}
    for c in concs:
        o = orig.get("validate_user", {}).get(c)
        w = wrk.get(c, {}).get("validate_user")
        h = http.get("validate_user", {}).get(c)
        used = min(int(c), cores)
        orig_pc = o["ops_per_s"] / used if o else None
        pg = wrate = wrk_rate(w) if w else (h["ops_per_s"] if h else None)
        pg_pc = pg / min(ht, int(c)) if pg else None
        per_core[c] = {"original_validate_user_per_core": orig_pc, "pgusers_login_per_hash_thread": pg_pc,
                       "ratio": pg_pc / orig_pc if pg_pc and orig_pc else None}
        if orig_pc and pg_pc:
            print(f"login per core at c={c}: original validate_user {orig_pc:.1f}/s per core "
                  f"(÷ {used} core(s)), pgusers login {pg_pc:.1f}/s per hash thread (÷ {min(ht, int(c))}) "
                  f"-> {pg_pc / orig_pc:.2f}x")
    ck = summary.get(f"check_key@{concs[-1]}", {})
    if ck.get("ratio_wrk"):
        print(f"check: pgusers (wrk, c={concs[-1]}) ÷ original check_key = {ck['ratio_wrk']:,.0f}x "
              f"(target >= 100x: {'met' if ck['ratio_wrk'] >= 100 else 'NOT met'})")
    res["summary"] = summary
    res["login_per_core"] = per_core
    with open(sys.argv[2], "w") as f:
        json.dump(res, f, indent=1)
    print(f"\nraw results: {sys.argv[2]}")


if __name__ == "__main__":
    main()
