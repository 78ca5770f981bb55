"""Throughput of the original Python `pgusers` library and of the pgusers daemon over HTTP,
for the same four operations, single client and at concurrency (N processes).

  original_bench.py orig-seed --conn CONNINFO --users N --sessions N --password PW --keys FILE
  original_bench.py orig --conn CONNINFO --users N --keys FILE --password PW
                         --concurrency 1,8 --duration 5
  original_bench.py http --base http://127.0.0.1:PORT --token TOKEN --users N --keys FILE
                         --password PW --concurrency 1,8 --duration 5

Operations (original method -> daemon endpoint):
  create_user   -> POST /v1/users                 (hashes a password)
  validate_user -> POST /v1/login                 (verifies a password, creates a session)
  check_key     -> POST /v1/sessions/check        (looks a session up, slides its expiry)
  find_user     -> GET  /v1/users?username=U

Prints one JSON object: {op: {concurrency: {ops_per_s, ops, errors, p50_ms, p99_ms}}}.
The original reads its connection from keyword arguments (passed through to psycopg.connect).
"""
import argparse
import http.client
import json
import multiprocessing as mp
import os
import random
import string
import sys
import time
import urllib.parse

OPS = ["create_user", "validate_user", "check_key", "find_user"]


def parse_conninfo(conn):
    return dict(part.split("=", 1) for part in conn.split())


# ---------------------------------------------------------------------------------------------
# the original library


def orig_space(conn):
    import pgusers  # the PyPI package

    pgusers.UserSpace.userspaces = {}  # a forked child must not reuse its parent's connection
    return pgusers.UserSpace(**parse_conninfo(conn))


def orig_seed(args):
    us = orig_space(args.conn)
    cr = us.connector.cursor()
    cr.execute("select count(*) from users where username = 'seed'")
    if cr.fetchone()[0] == 0:
        t0 = time.perf_counter()
        us.create_user("seed", args.password, "seed@bench.invalid")
        sys.stderr.write(f"original create_user (one): {(time.perf_counter() - t0) * 1000:.1f} ms\n")
    cr.execute("select salt, kpasswd from users where username = 'seed'")
    salt, kpasswd = cr.fetchone()
    cr.execute("select count(*) from users where username ~ '^u[0-9]+$'")
    have = cr.fetchone()[0]
    if have < args.users:
        cr.execute(
            "insert into users (username, email, salt, kpasswd, admin, extra_data) "
            "select 'u' || i, 'u' || i || '@bench.invalid', %s, %s, false, %s "
            "from generate_series(%s::int, %s::int) i",
            (salt, kpasswd, b"\x80\x04N.", have + 1, args.users))
    cr.execute("select count(*) from sessions")
    have = cr.fetchone()[0]
    if have < args.sessions:
        # the original's session rows: (userid, key = 32 hex chars, expiration = epoch seconds, pickle)
        cr.execute(
            "insert into sessions (userid, key, expiration, extra_data) "
            "select u.userid, md5('bench' || g.i), extract(epoch from now()) + 864000, %s "
            "from generate_series(%s::int, %s::int) g(i) join users u on u.username = 'u' || (1 + (g.i - 1) %% %s)",
            (b"\x80\x04N.", have + 1, args.sessions, args.users))
    us.connector.commit()
    if args.indexes:
        cr.execute("create index if not exists bench_sessions_key on sessions (key)")
        cr.execute("create index if not exists bench_users_username on users (username)")
        cr.execute("analyze users")
        cr.execute("analyze sessions")
        us.connector.commit()
    with open(args.keys, "w") as f:
        cr.execute("select md5('bench' || i) from generate_series(1, %s::int) i", (args.sessions,))
        for (k,) in cr.fetchall():
            f.write(k + "\n")
    us.close()


class OrigClient:
    def __init__(self, args, wid):
        import pgusers

        self.ok = pgusers.OK
        self.us = orig_space(args.conn)
        self.args = args
        self.wid = wid
        self.n = 0
        self.run = "".join(random.choice(string.ascii_lowercase) for _ in range(3))

    def create_user(self):
        self.n += 1
        name = f"c{self.run}{self.wid}_{self.n}"  # varchar(20) in the original schema
        return self.us.create_user(name, self.args.password, name + "@b.invalid") > 0

    def validate_user(self):
        u = f"u{random.randint(1, self.args.login_users)}"
        key, _admin, _uid = self.us.validate_user(u, self.args.password)
        return bool(key)

    def check_key(self):
        rc = self.us.check_key(random.choice(self.args.key_list))[0]
        return rc == self.ok

    def find_user(self):
        return self.us.find_user(username=f"u{random.randint(1, self.args.users)}") is not None


# ---------------------------------------------------------------------------------------------
# the daemon over HTTP (keep-alive, one connection per client process)


class HttpClient:
    def __init__(self, args, wid):
        u = urllib.parse.urlsplit(args.base)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.args = args
        self.wid = wid
        self.n = 0
        self.run = "".join(random.choice(string.ascii_lowercase) for _ in range(3))
        self.auth = {"Authorization": "Bearer " + args.token}

    def _req(self, method, path, body=None, headers=None):
        h = {"Content-Type": "application/json"} if body is not None else {}
        if headers:
            h.update(headers)
        data = json.dumps(body) if body is not None else None
        try:
            self.conn.request(method, path, body=data, headers=h)
            r = self.conn.getresponse()
            r.read()
            return r.status
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            return 0

    def create_user(self):
        self.n += 1
        name = f"h{self.run}{self.wid}_{self.n}"
        return self._req("POST", "/v1/users", {"username": name, "password": self.args.password,
                                               "email": name + "@b.invalid"}, self.auth) == 201

    def validate_user(self):
        u = f"u{random.randint(1, self.args.login_users)}"
        return self._req("POST", "/v1/login", {"username": u, "password": self.args.password}) == 201

    def check_key(self):
        return self._req("POST", "/v1/sessions/check", {"key": random.choice(self.args.key_list)}) == 200

    def find_user(self):
        u = f"u{random.randint(1, self.args.users)}"
        return self._req("GET", "/v1/users?username=" + u, None, self.auth) == 200


# ---------------------------------------------------------------------------------------------


def worker(mode, args, wid, op, start_at, q):
    try:
        client = OrigClient(args, wid) if mode == "orig" else HttpClient(args, wid)
        fn = getattr(client, op)
        fn()  # one untimed call: connection set up, caches of prepared statements
        lat = []
        errors = 0
        delay = start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        end = start_at + args.duration
        while time.time() < end:
            t0 = time.perf_counter()
            try:
                ok = fn()
            except Exception:  # noqa: BLE001 - counted, the run goes on
                ok = False
            lat.append(time.perf_counter() - t0)
            if not ok:
                errors += 1
        q.put((len(lat), errors, lat))
    except Exception as e:  # noqa: BLE001
        q.put((0, 1, [], repr(e)))


def run_op(mode, args, op, conc):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    start_at = time.time() + 1.0 + 0.05 * conc
    procs = [ctx.Process(target=worker, args=(mode, args, i, op, start_at, q)) for i in range(conc)]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    ops = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2])
    problems = [r[3] for r in results if len(r) > 3]

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000 if lat else 0

    out = {"ops_per_s": ops / args.duration, "ops": ops, "errors": errors,
           "p50_ms": pct(50), "p99_ms": pct(99)}
    if problems:
        out["problems"] = problems[:3]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["orig-seed", "orig", "http"])
    ap.add_argument("--conn")
    ap.add_argument("--base")
    ap.add_argument("--token", default="")
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--login-users", type=int, default=300)
    ap.add_argument("--keys")
    ap.add_argument("--password", default="benchpassword1")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--ops", default=",".join(OPS))
    ap.add_argument("--indexes", action="store_true", help="orig-seed: add the indexes the original lacks")
    args = ap.parse_args()
    if args.mode == "orig-seed":
        orig_seed(args)
        return
    with open(args.keys) as f:
        args.key_list = [line.strip() for line in f if line.strip()]
    res = {}
    for op in args.ops.split(","):
        res[op] = {}
        for c in [int(x) for x in args.concurrency.split(",")]:
            r = run_op(args.mode, args, op, c)
            res[op][str(c)] = r
            sys.stderr.write(f"  {args.mode:5} {op:14} c={c:<3} {r['ops_per_s']:10.1f} ops/s  "
                             f"p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  errors {r['errors']}\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
