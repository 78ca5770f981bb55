"""check_key, one thread: the Python client (clients/python, over HTTP) or the Python library
(PyPI pgusers 0.9.4, straight to PostgreSQL).

  python_client_bench.py client  --keys FILE --duration S     (PGUSERS_URL names the daemon)
  python_client_bench.py library --conn CONNINFO --keys FILE --duration S
  python_client_bench.py median FILE...                        (JSON lines -> the median run)

Each measurement makes one untimed call, then calls check_key with keys drawn at random from
FILE for S seconds, and prints one JSON object: {ops_per_s, ops, errors, p50_ms, p99_ms}. A call
that does not answer OK counts as an error.
"""

import argparse
import json
import random
import statistics
import sys
import time


def space(mode, conn):
    if mode == "client":
        import pgusers_client

        return pgusers_client.UserSpace(), pgusers_client.OK
    import pgusers

    params = dict(part.split("=", 1) for part in conn.split())
    return pgusers.UserSpace(**params), pgusers.OK


def measure(args):
    with open(args.keys) as f:
        keys = [line.strip() for line in f if line.strip()]
    us, ok = space(args.mode, args.conn)
    us.check_key(random.choice(keys))  # connection set up
    latencies = []
    errors = 0
    end = time.perf_counter() + args.duration
    while True:
        key = random.choice(keys)
        t0 = time.perf_counter()
        if t0 >= end:
            break
        rc = us.check_key(key)[0]
        latencies.append(time.perf_counter() - t0)
        if rc != ok:
            errors += 1
    us.close()
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    print(
        json.dumps(
            {
                "ops_per_s": len(latencies) / args.duration,
                "ops": len(latencies),
                "errors": errors,
                "p50_ms": pct(50),
                "p99_ms": pct(99),
            }
        )
    )


def median(files):
    runs = []
    for name in files:
        with open(name) as f:
            runs.extend(json.loads(line) for line in f if line.strip())
    runs.sort(key=lambda r: r["ops_per_s"])
    middle = dict(runs[len(runs) // 2])
    middle["rounds"] = [round(r["ops_per_s"], 1) for r in runs]
    middle["median_ops_per_s"] = statistics.median(r["ops_per_s"] for r in runs)
    print(json.dumps(middle))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["client", "library", "median"])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--conn", default="")
    ap.add_argument("--keys")
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args()
    if args.mode == "median":
        median(args.files)
    else:
        measure(args)


if __name__ == "__main__":
    sys.exit(main())
