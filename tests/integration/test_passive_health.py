"""tests/integration/test_passive_health.py: resends and passive health.

A request is sent twice only when the origin cannot have acted on it: after
a connect failure (any method, a body included up to
limits.retry_body_bytes), or for an idempotent method before any response
byte. A non-idempotent request written whole to a pooled connection that
the origin then closes is never resent. Endpoints the data path sees
failing (connect failures, closes before a response, timeouts) are ejected
from picks; an origin's own 5xx are not counted. Ejections show in the
metrics, the status, meridianctl and explain, and survive a reload.

The chaos tests run separate origin processes per endpoint under bounded
load from Python threads and SIGKILL or SIGSTOP one of them.
"""

import itertools
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Meridian, Origin, RawConn, addr, region, request, wait_for,  # noqa: E402
                     write_config)

# The active checker sees the endpoints once at start, then once a minute,
# and needs 5 failures: what takes an endpoint out here is passive health.
QUIET_CHECKS = {"interval_ms": 60000, "timeout_ms": 1000, "fall": 5}


def metric(text, name, **labels):
    """The value of one sample of the Prometheus text, or None."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            sample, _, value = line.rpartition(" ")
            got = sample[len(name):].strip("{}")
            got = ",".join(sorted(got.split(","))) if got else ""
            if got == want:
                return float(value)
    return None


class Load:
    """Bounded load: at most `total` requests from `threads` keep-alive
    clients (fewer once finish() is called), one in five a POST with a small
    body. Records (index, method, status, endpoint, start, end) per request,
    times from time.monotonic()."""

    def __init__(self, port, total, threads, timeout=15.0, path="/load"):
        self.port, self.total, self.threads, self.timeout = port, total, threads, timeout
        self.path = path
        self.results = []
        self.lock = threading.Lock()
        self.next = itertools.count()
        self.pool = []
        self.finishing = threading.Event()

    def _run(self):
        conn = None
        while True:
            i = next(self.next)
            if i >= self.total or self.finishing.is_set():
                break
            post = i % 5 == 4
            body = (b"post-%d-" % i) * 40 if post else None
            start = time.monotonic()
            status, endpoint = None, None
            try:
                if conn is None:
                    conn = RawConn(port=self.port, timeout=self.timeout)
                resp = conn.request("POST" if post else "GET", "%s/%d" % (self.path, i),
                                    body=body)
                status, endpoint = resp.status, resp.get("X-Origin-Endpoint")
                if post and status == 200 and resp.json()["body_length"] != len(body):
                    status = "body mismatch"
                if (resp.get("Connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - any failure is an outcome to report
                status = repr(e)
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.results.append((i, "POST" if post else "GET", status, endpoint, start,
                                     time.monotonic()))
        if conn is not None:
            conn.close()

    def start(self):
        self.pool = [threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)]
        for t in self.pool:
            t.start()
        return self

    def done(self):
        with self.lock:
            return len(self.results)

    def finish(self):
        """No new requests from now on."""
        self.finishing.set()

    def join(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        for t in self.pool:
            t.join(max(0.1, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.pool), "load did not finish"
        return sorted(self.results)


class PassiveTestBase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mr-passive-")
        self.origins = []

    def tearDown(self):
        for o in self.origins:
            try:
                os.kill(o.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            o.stop()
            o.remove_files()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def origin(self, ep, name="main"):
        o = Origin({name: [ep]}).start()
        self.origins.append(o)
        return o

    def meridian(self, endpoints, overrides=None):
        cfg = {
            "workers": 1,
            "health": dict(QUIET_CHECKS),
            "regions": [region("local", {"main": endpoints})],
            "timeouts": {"upstream_connect_ms": 500, "upstream_response_ms": 10000},
        }
        for key, value in (overrides or {}).items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = dict(cfg[key], **value)
            else:
                cfg[key] = value
        path, _ = write_config(self.tmp, cfg)
        return Meridian(path)

    def metrics(self, m):
        resp = m.admin("GET", "/metrics")
        self.assertEqual(resp.status, 200)
        return resp.text

    def status_endpoint(self, m, ep):
        resp = m.admin("GET", "/api/v1/status")
        self.assertEqual(resp.status, 200)
        for r in resp.json()["regions"]:
            for c in r["clusters"]:
                for e in c["endpoints"]:
                    if e["address"] == ep:
                        return e
        self.fail("no endpoint %s in the status" % ep)


class ResendTest(PassiveTestBase):
    def test_post_on_reused_connection_closed_by_origin_sent_once(self):
        live = addr()
        o = self.origin(live)
        with self.meridian([live]) as m, RawConn(port=m.port, timeout=5) as c:
            self.assertEqual(c.request("GET", "/warm").status, 200)
            mark = o.mark()
            # Reuses the pooled connection; the origin reads it whole and
            # closes without answering: it may have acted on it.
            resp = c.request("POST", "/close-now")
            self.assertEqual(resp.status, 502)
            posts = [e for e in o.requests(since=mark) if e["method"] == "POST"]
            self.assertEqual(len(posts), 1, "the POST reached the origin once: %r" % posts)
        with self.meridian([live]) as m, RawConn(port=m.port, timeout=5) as c:
            self.assertEqual(c.request("GET", "/warm").status, 200)
            mark = o.mark()
            resp = c.request("GET", "/close-now")
            self.assertEqual(resp.status, 502)
            gets = [e for e in o.requests(since=mark) if e["method"] == "GET"]
            self.assertEqual(len(gets), 2, "an idempotent GET is sent again: %r" % gets)

    def test_connect_failure_resends_bodies_up_to_limit(self):
        dead, live = addr(), addr()
        o = self.origin(live)
        passive_off = {"passive": {"consecutive_failures": 0}}
        with self.meridian([dead, live], {"routing": {"endpoint_policy": "round_robin"},
                                          "health": passive_off}) as m:
            mark = o.mark()
            for i in range(4):
                body = (b"%d" % i) * 3000
                resp = request(m.port, "POST", "/echo", body=body, timeout=5)
                self.assertEqual((resp.status, resp.body), (200, body), "POST %d" % i)
                resp = request(m.port, "POST", "/echo", headers={"Transfer-Encoding": "chunked"},
                               body=b"5\r\nhello\r\n0\r\n\r\n", timeout=5)
                self.assertEqual((resp.status, resp.body), (200, b"hello"), "chunked POST %d" % i)
            posts = [e for e in o.requests(since=mark) if e["method"] == "POST"]
            self.assertEqual(len(posts), 8, "each POST reached the live origin once")
        # Over limits.retry_body_bytes the body is not kept: a connect failure
        # is then a 502, and nothing reaches the origin twice.
        with self.meridian([dead, live], {"routing": {"endpoint_policy": "round_robin"},
                                          "health": passive_off,
                                          "limits": {"retry_body_bytes": 1000}}) as m:
            statuses = [request(m.port, "POST", "/echo", body=b"b" * 3000, timeout=5).status
                        for _ in range(4)]
            self.assertEqual(sorted(statuses), [200, 200, 502, 502], statuses)
            small = [request(m.port, "POST", "/echo", body=b"s" * 900, timeout=5).status
                     for _ in range(4)]
            self.assertEqual(small, [200] * 4, "bodies within the limit are resent")

    def test_timeout_resends_get_not_post(self):
        hung, live = addr(), addr()
        self.origin(live)
        h = self.origin(hung)
        os.kill(h.pid, signal.SIGSTOP)
        with self.meridian([hung, live], {"routing": {"endpoint_policy": "round_robin"},
                                          "timeouts": {"upstream_response_ms": 300},
                                          "health": {"passive": {"consecutive_failures": 0}}}) as m:
            gets = [request(m.port, "GET", "/t%d" % i, timeout=5) for i in range(4)]
            self.assertEqual([(r.status, r.get("X-Origin-Endpoint")) for r in gets],
                             [(200, live)] * 4, "GETs resent after the response timeout")
            posts = [request(m.port, "POST", "/p%d" % i, body=b"x", timeout=5).status
                     for i in range(4)]
            self.assertEqual(sorted(posts), [200, 200, 504, 504],
                             "a POST written whole is never resent")


class EjectionTest(PassiveTestBase):
    PASSIVE = {"consecutive_failures": 3, "base_ms": 60000, "max_ms": 120000,
               "max_ejected_percent": 50}

    def eject_dead(self, m, dead):
        """GETs until dead is ejected (each one served by the live endpoint)."""
        for i in range(12):
            resp = request(m.port, "GET", "/e%d" % i, timeout=5)
            self.assertEqual(resp.status, 200)
        text = self.metrics(m)
        self.assertEqual(metric(text, "meridian_endpoint_ejected", cluster="main", endpoint=dead),
                         1, "ejected after 3 connect failures")

    def test_connect_failures_eject(self):
        dead, live = addr(), addr()
        self.origin(live)
        with self.meridian([dead, live], {"routing": {"endpoint_policy": "round_robin"},
                                          "health": {"passive": self.PASSIVE}}) as m:
            self.eject_dead(m, dead)
            text = self.metrics(m)
            self.assertEqual(metric(text, "meridian_endpoint_ejected", cluster="main",
                                    endpoint=live), 0)
            self.assertEqual(metric(text, "meridian_passive_ejections_total", cluster="main",
                                    endpoint=dead), 1)
            failures = metric(text, "meridian_upstream_connect_failures_total", cluster="main",
                              endpoint=dead)
            self.assertEqual(failures, 3)
            for i in range(10):
                resp = request(m.port, "GET", "/after%d" % i, timeout=5)
                self.assertEqual((resp.status, resp.get("X-Origin-Endpoint")), (200, live))
            self.assertEqual(metric(self.metrics(m), "meridian_upstream_connect_failures_total",
                                    cluster="main", endpoint=dead), failures,
                             "out of picks: no more connects to it")
            e = self.status_endpoint(m, dead)
            self.assertTrue(e["ejected"])
            self.assertEqual(e["ejection"]["reason"], "connect_failure")
            self.assertEqual(e["ejection"]["ejections"], 1)
            self.assertRegex(e["ejection"]["until"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            self.assertGreater(e["ejection"]["remaining_ms"], 0)
            self.assertEqual(e["ejections_total"], 1)
            self.assertEqual(e["health"], "up", "ejection is not the active health state")
            for key in ("address", "health", "since", "last_check", "traffic"):
                self.assertIn(key, e, "existing status fields kept")
            live_e = self.status_endpoint(m, live)
            self.assertEqual((live_e["ejected"], live_e["ejection"]), (False, None))
            out = m.ctl("status")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertRegex(out.stdout, r"%s.*ejected \(connect_failure" % re.escape(dead))
            ex = m.admin("GET", "/api/v1/explain?ip=192.0.2.1")
            self.assertEqual(ex.status, 200)
            clusters = [c for cand in ex.json()["candidates"] for c in cand["clusters"]]
            ejected = [x["address"] for c in clusters for x in c["ejected_endpoints"]]
            self.assertEqual(ejected, [dead])
            out = m.ctl("explain", "192.0.2.1")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("endpoint %s ejected (connect_failure" % dead, out.stdout)
            # A reload that keeps the endpoint keeps its ejection.
            gen = m.admin("GET", "/api/v1/status").json()["generation"]
            m.reload()
            wait_for(lambda: m.admin("GET", "/api/v1/status").json()["generation"] > gen,
                     message="reload applied")
            self.assertTrue(self.status_endpoint(m, dead)["ejected"], "kept across the reload")

    def test_at_most_max_ejected_percent(self):
        dead1, dead2 = addr(), addr()
        with self.meridian([dead1, dead2], {"health": {"passive": self.PASSIVE}}) as m:
            for i in range(10):
                self.assertEqual(request(m.port, "GET", "/d%d" % i, timeout=5).status, 502)
            text = self.metrics(m)
            ejected = [metric(text, "meridian_endpoint_ejected", cluster="main", endpoint=e)
                       for e in (dead1, dead2)]
            self.assertEqual(sorted(ejected), [0, 1], "2 endpoints at 50 %: one out at most")

    def test_origin_errors_do_not_eject(self):
        a, b = addr(), addr()
        self.origin(a)
        self.origin(b)
        with self.meridian([a, b], {"health": {"passive": self.PASSIVE}}) as m:
            for i in range(20):
                resp = request(m.port, "GET", "/fail%d?status=%d" % (i, 502 if i % 2 else 500),
                               timeout=5)
                self.assertIn(resp.status, (500, 502))
                self.assertIsNotNone(resp.get("X-Origin-Endpoint"), "the origin's own answer")
            text = self.metrics(m)
            for e in (a, b):
                self.assertEqual(metric(text, "meridian_endpoint_ejected", cluster="main",
                                        endpoint=e), 0)
                self.assertEqual(metric(text, "meridian_passive_ejections_total", cluster="main",
                                        endpoint=e), 0)


class ChaosTest(PassiveTestBase):
    """Separate origin processes per endpoint under bounded load."""

    def test_sigkill_one_endpoint_under_load(self):
        for policy in ("round_robin", "least_requests"):
            with self.subTest(policy):
                a, b = addr(), addr()
                self.origin(a)
                victim = self.origin(b)
                with self.meridian([a, b], {"workers": 2,
                                            "routing": {"endpoint_policy": policy}}) as m:
                    load = Load(m.port, total=600, threads=8).start()
                    wait_for(lambda: load.done() >= 150, timeout=30, message="load started")
                    os.kill(victim.pid, signal.SIGKILL)
                    victim.proc.wait(timeout=10)  # gone, its sockets closed
                    killed_at = time.monotonic()
                    results = load.join()
                    self.assertEqual(len(results), 600)
                    failed = [r for r in results if r[2] != 200]
                    # Only a POST the killed origin may have read (in flight
                    # when it died) can fail; everything started once it is
                    # gone succeeds, on the other endpoint.
                    late = [r for r in failed if r[1] == "GET" or r[4] >= killed_at]
                    self.assertEqual(late, [], "failed: %r" % failed[:10])
                    self.assertLessEqual(len(failed), 8)
                    after = [r for r in results if r[4] >= killed_at]
                    self.assertTrue(after and all(r[3] == a for r in after),
                                    "served by the surviving endpoint")

    def stop_under_load(self, policy, overrides):
        a, b = addr(), addr()
        self.origin(a)
        victim = self.origin(b)
        with self.meridian([a, b], dict({"workers": 2, "routing": {"endpoint_policy": policy}},
                                        **overrides)) as m:
            load = Load(m.port, total=5000, threads=32).start()
            wait_for(lambda: load.done() >= 100, timeout=30, message="load started")
            os.kill(victim.pid, signal.SIGSTOP)
            stopped_done = load.done()
            try:
                # While b is stopped (its kernel still accepting), the load
                # goes on: a request already sent to b waits, new ones go to a.
                wait_for(lambda: load.done() >= stopped_done + 300, timeout=20,
                         message="%s: the load stalled behind the stopped endpoint" % policy)
                served_while_stopped = load.done() - stopped_done
            finally:
                os.kill(victim.pid, signal.SIGCONT)
                load.finish()
            results = load.join()
            return m, results, served_while_stopped, a, b

    def test_sigstop_one_endpoint_under_load(self):
        for policy in ("round_robin", "least_requests"):
            with self.subTest(policy):
                m, results, served, a, b = self.stop_under_load(policy, {})
                failed = [r for r in results if r[2] != 200]
                self.assertEqual(failed, [], "every request answered: %r" % failed[:10])
                self.assertGreaterEqual(served, 300)

    def test_sigstop_timeouts_eject(self):
        # Response timeouts shorter than the stop: requests caught on the
        # stopped endpoint time out; GETs are resent to the other endpoint,
        # and the timeouts eject the stopped one.
        for policy in ("round_robin", "least_requests"):
            with self.subTest(policy):
                a, b = addr(), addr()
                self.origin(a)
                victim = self.origin(b)
                with self.meridian([a, b], {"workers": 2,
                                            "routing": {"endpoint_policy": policy},
                                            "timeouts": {"upstream_response_ms": 300},
                                            "health": {"passive": EjectionTest.PASSIVE}}) as m:
                    os.kill(victim.pid, signal.SIGSTOP)
                    try:
                        def ejected():
                            for i in range(4):
                                resp = request(m.port, "GET", "/s%d" % i, timeout=5)
                                self.assertEqual(resp.status, 200)
                            return metric(self.metrics(m), "meridian_endpoint_ejected",
                                          cluster="main", endpoint=b) == 1
                        wait_for(ejected, timeout=30, message="%s: stopped endpoint ejected"
                                 % policy)
                        e = self.status_endpoint(m, b)
                        self.assertEqual(e["ejection"]["reason"], "timeout")
                        for i in range(10):
                            resp = request(m.port, "GET", "/after%d" % i, timeout=5)
                            self.assertEqual((resp.status, resp.get("X-Origin-Endpoint")),
                                             (200, a))
                    finally:
                        os.kill(victim.pid, signal.SIGCONT)


if __name__ == "__main__":
    unittest.main()
