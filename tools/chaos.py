#!/usr/bin/env python3
"""tools/chaos.py: an endpoint dies or stalls under load; what do clients see?

Starts two test origins (tools/origin.c, one process per endpoint) and a
meridian with both in one cluster, all on loopback, then runs paced load
(keep-alive clients in threads, 1 request in 5 a small POST) for --seconds.
One second in, it SIGKILLs one origin (--fault kill) or SIGSTOPs it for
--stop-seconds and SIGCONTs it (--fault stop). Prints the requests sent,
the failures by status, and the latency (max = the stall) overall and of
the requests started while the fault was on. Bounded in time and count.

    python3 tools/chaos.py --fault kill --policy round_robin
    python3 tools/chaos.py --fault stop --policy least_requests --stop-seconds 4

--meridian picks the binary (e.g. another build to compare with).
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from harness import Meridian, Origin, RawConn, free_port, region, write_config  # noqa: E402

MAX_REQUESTS = 200000


def client(port, deadline, interval, counter, lock, out):
    conn = None
    next_at = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if now < next_at:
            time.sleep(next_at - now)
        next_at += interval
        with lock:
            i = counter[0]
            counter[0] += 1
        if i >= MAX_REQUESTS:
            break
        post = i % 5 == 4
        start = time.monotonic()
        try:
            if conn is None:
                conn = RawConn(port=port, timeout=30)
            resp = conn.request("POST" if post else "GET", "/chaos/%d" % i,
                                body=b"p" * 200 if post else None)
            status = resp.status
            if (resp.get("Connection") or "").lower() == "close":
                conn.close()
                conn = None
        except Exception as e:  # noqa: BLE001 - every failure is an outcome
            status = type(e).__name__
            if conn is not None:
                conn.close()
            conn = None
        out.append((start, time.monotonic() - start, "POST" if post else "GET", status))
    if conn is not None:
        conn.close()


def summary(label, rows):
    if not rows:
        print("%s: no requests" % label)
        return
    lat = sorted(r[1] for r in rows)
    failed = {}
    for r in rows:
        if r[3] != 200:
            key = "%s %s" % (r[2], r[3])
            failed[key] = failed.get(key, 0) + 1
    print("%s: %d requests, %d failed %s, latency p50 %.1f ms, p99 %.1f ms, max %.0f ms, "
          "%d over 1 s" % (label, len(rows), sum(failed.values()), failed or "",
                           lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3, lat[-1] * 1e3,
                           sum(1 for x in lat if x > 1.0)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fault", choices=("kill", "stop"), required=True)
    ap.add_argument("--policy", choices=("round_robin", "least_requests"), default="least_requests")
    ap.add_argument("--rate", type=int, default=2000, help="requests per second (target)")
    ap.add_argument("--seconds", type=float, default=6.0, help="load duration (<= 60)")
    ap.add_argument("--stop-seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--meridian", default=os.path.join(ROOT, "build/release/meridian"))
    ap.add_argument("--origin", default=os.path.join(ROOT, "build/release/origin"))
    args = ap.parse_args()
    seconds = min(args.seconds, 60.0)

    tmp = tempfile.mkdtemp(prefix="mr-chaos-")
    a, b = "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port()
    origins = [Origin({"main": [a]}, log=False, binary=args.origin).start(),
               Origin({"main": [b]}, log=False, binary=args.origin).start()]
    victim = origins[1]
    try:
        path, _ = write_config(tmp, {
            "workers": 2,
            "regions": [region("local", {"main": [a, b]})],
            "routing": {"default": ["local"], "endpoint_policy": args.policy},
            "health": {"interval_ms": 1000, "timeout_ms": 500, "fall": 2},
            "timeouts": {"upstream_connect_ms": 1000, "upstream_response_ms": 30000},
            "access_log": None,
        })
        with Meridian(path, binary=args.meridian) as m:
            out, lock, counter = [], threading.Lock(), [0]
            start = time.monotonic()
            deadline = start + seconds
            interval = args.threads / float(args.rate)
            threads = [threading.Thread(target=client, daemon=True,
                                        args=(m.port, deadline, interval, counter, lock, out))
                       for _ in range(args.threads)]
            for t in threads:
                t.start()
            time.sleep(1.0)
            fault_at = time.monotonic()
            if args.fault == "kill":
                os.kill(victim.pid, signal.SIGKILL)
                fault_end = fault_at + 1.0
            else:
                os.kill(victim.pid, signal.SIGSTOP)
                time.sleep(args.stop_seconds)
                os.kill(victim.pid, signal.SIGCONT)
                fault_end = time.monotonic()
            for t in threads:
                t.join(seconds + 60)
            rows = list(out)
            took = max(r[0] + r[1] for r in rows) - start
            print("meridian %s, policy %s, fault %s, %d threads, %.0f req/s achieved"
                  % (args.meridian, args.policy, args.fault, args.threads, len(rows) / took))
            summary("all", rows)
            summary("started during the fault (%.1f s)" % (fault_end - fault_at),
                    [r for r in rows if fault_at <= r[0] < fault_end])
    finally:
        for o in origins:
            try:
                os.kill(o.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            o.stop()
            o.remove_files()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
