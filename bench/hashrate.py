"""Time one password hash with the daemon's default argon2id parameters (and the original
library's PBKDF2-HMAC-SHA512, 100,000 iterations) on one core. Prints one JSON object.

Usage: python hashrate.py [ROUNDS]   (needs argon2-cffi)
"""
import hashlib
import json
import os
import statistics
import sys
import time

from argon2.low_level import Type, hash_secret_raw

M_KIB, T, P = 19456, 2, 1


def median_time(fn, rounds):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    salt = os.urandom(16)
    pw = b"benchpassword1"
    argon = lambda: hash_secret_raw(pw, salt, time_cost=T, memory_cost=M_KIB, parallelism=P,
                                    hash_len=32, type=Type.ID)
    pbkdf2 = lambda: hashlib.pbkdf2_hmac("sha512", pw, salt, 100000)
    argon()  # warm up
    a_med, a_min = median_time(argon, rounds)
    p_med, p_min = median_time(pbkdf2, max(3, rounds // 2))
    print(json.dumps({
        "argon2id": {"m_kib": M_KIB, "t": T, "p": P, "median_s": a_med, "min_s": a_min,
                     "hashes_per_s_per_core": 1.0 / a_med, "impl": "argon2-cffi (libargon2)"},
        "pbkdf2_sha512_100k": {"median_s": p_med, "min_s": p_min,
                               "hashes_per_s_per_core": 1.0 / p_med, "impl": "hashlib (OpenSSL)"},
    }))


if __name__ == "__main__":
    main()
