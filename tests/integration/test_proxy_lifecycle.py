"""tests/integration/test_proxy_lifecycle.py: reload (SIGHUP) and shutdown (SIGTERM).

A good file moves new traffic at once while the process stays up; a bad file
is refused with its errors logged by JSON path and the old routing keeps
serving; a request in flight finishes on the snapshot it started with.
SIGTERM stops accepting, lets a running download finish, then exits 0; with
only idle connections it exits 0 promptly.
"""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (IncompleteResponse, Meridian, OriginTestCase, RawConn, addr,  # noqa: E402
                     deep_merge, pattern_sha256, region, request, wait_for, write_config)

BASE = {
    # The harness default health.timeout_ms 200 > interval_ms 100 is refused.
    "health": {"interval_ms": 1000, "timeout_ms": 200},
    "timeouts": {"client_header_ms": 2000, "client_idle_ms": 10000,
                 "upstream_connect_ms": 300, "upstream_response_ms": 3000,
                 "shutdown_grace_ms": 10000},
}

# A /slow download of SLOW_N bytes in 40 steps, 50 ms apart: about 2 s.
SLOW_N = 40 * 2500
SLOW_PATH = "/slow?n=%d&every_ms=50&step=2500" % SLOW_N


def rewrite(path, mutate):
    """Applies mutate(dict) to the JSON config at path, replacing it atomically."""
    with open(path) as f:
        cfg = json.load(f)
    mutate(cfg)
    tmp = path + ".new"
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=2)
    os.replace(tmp, path)


def refused(host, port):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def buffered(conn):
    """Reads whatever has arrived on conn without blocking (kept in conn.buf
    for later reads); returns the number of bytes buffered."""
    conn.sock.settimeout(0.0)
    try:
        while not conn.eof:
            try:
                data = conn.sock.recv(262144)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                conn.eof = True
                break
            conn.buf += data
    finally:
        conn.sock.settimeout(conn.timeout)
    return len(conn.buf)


class LifecycleTest(OriginTestCase):
    TMP_PREFIX = "mr-life-"

    @classmethod
    def origin_clusters(cls):
        cls.a, cls.b, cls.c = addr(), addr(), addr()
        return {"alpha": [cls.a], "beta": [cls.b], "gamma": [cls.c]}

    def meridian(self, overrides=None):
        cfg = deep_merge(BASE, {
            "regions": [region("r1", {"alpha": ([self.a], 100), "gamma": ([self.c], 0)}),
                        region("r2", {"beta": [self.b]})],
            "routing": {"default": ["r1", "r2"]},
        })
        path, _ = write_config(tempfile.mkdtemp(dir=self.tmp), deep_merge(cfg, overrides))
        return Meridian(path)

    def cluster_of_new_request(self, m, tag="/who"):
        resp = request(m.port, "GET", tag, headers={"Connection": "close"}, timeout=5)
        self.assertEqual(resp.status, 200)
        return resp.get("X-Origin-Cluster")

    def all_go_to(self, m, cluster, n=10):
        return all(self.cluster_of_new_request(m) == cluster for _ in range(n))

    # ----------------------------------------------------------------- reload

    def test_reload_good_file_moves_traffic(self):
        with self.meridian() as m:
            self.assertTrue(self.all_go_to(m, "alpha"), "before reload: alpha")
            rewrite(m.config_path, lambda c: c["routing"].__setitem__("default", ["r2", "r1"]))
            m.reload()
            wait_for(lambda: self.cluster_of_new_request(m) == "beta", timeout=5,
                     message="routing.default change took effect after SIGHUP")
            self.assertTrue(self.all_go_to(m, "beta"), "after reload: every new request to beta")
            self.assertTrue(m.running(), "process stays up across SIGHUP")

            # Weights: alpha 0, gamma 100 in r1, r1 first again.
            def weights(c):
                c["routing"]["default"] = ["r1", "r2"]
                c["regions"][0]["clusters"][0]["weight"] = 0
                c["regions"][0]["clusters"][1]["weight"] = 100
            rewrite(m.config_path, weights)
            m.reload()
            wait_for(lambda: self.cluster_of_new_request(m) == "gamma", timeout=5,
                     message="weight change took effect after SIGHUP")
            self.assertTrue(self.all_go_to(m, "gamma"), "weight 0 cluster takes nothing")
            self.assertTrue(m.running())

    def test_reload_bad_file_keeps_old_routing(self):
        with self.meridian() as m:
            self.assertTrue(self.all_go_to(m, "alpha"))

            def bad(c):
                c["routing"]["default"] = ["r2", "r1"]  # would move traffic if accepted
                c["regions"][0]["clusters"][0]["weight"] = -1
                c["timeouts"]["client_idle_ms"] = "long"
            rewrite(m.config_path, bad)
            m.reload()
            wait_for(lambda: "regions[0].clusters[0].weight" in m.stderr_text(), timeout=5,
                     message="reload error logged with its JSON path")
            self.assertIn("timeouts.client_idle_ms", m.stderr_text(), "every error logged")
            self.assertTrue(m.running(), "a bad reload does not stop the process")
            self.assertTrue(self.all_go_to(m, "alpha"), "old routing keeps serving")

            # Broken JSON, too.
            logged = len(m.stderr_text())
            with open(m.config_path, "w") as f:
                f.write('{"regions": [')
            m.reload()
            wait_for(lambda: len(m.stderr_text()) > logged, timeout=5,
                     message="syntax error of the reloaded file logged")
            self.assertTrue(m.running())
            self.assertTrue(self.all_go_to(m, "alpha"), "still the old routing")

    def test_sighup_as_soon_as_serving_reloads(self):
        # A supervisor may send SIGHUP the moment the edge answers: the signal
        # must reload it, never kill it (it used to, when it came before the
        # control thread had installed its handler).
        for _ in range(10):
            with self.meridian() as m:
                m.reload()
                wait_for(lambda: "generation 2" in m.stderr_text() or not m.running(),
                         timeout=5, message="the reload is logged")
                self.assertTrue(m.running(), "SIGHUP killed meridian:\n" + m.stderr_text())
                self.assertEqual(self.cluster_of_new_request(m), "alpha")

    def test_inflight_request_finishes_on_old_snapshot(self):
        with self.meridian() as m, RawConn(port=m.port, timeout=8) as slow:
            slow.send_request("GET", SLOW_PATH)
            head = slow.read_head()
            self.assertEqual(head.get("X-Origin-Cluster"), "alpha")
            rewrite(m.config_path, lambda c: c["routing"].__setitem__("default", ["r2", "r1"]))
            m.reload()
            wait_for(lambda: self.cluster_of_new_request(m) == "beta", timeout=5,
                     message="new requests go to the new cluster")
            self.assertLess(buffered(slow), SLOW_N,
                            "traffic moved while the slow download was still in flight")
            resp = slow.read_body(head)
            resp_sha = hashlib.sha256(resp.body).hexdigest()
            self.assertEqual((resp.length, resp_sha), (SLOW_N, pattern_sha256(SLOW_N)),
                             "the slow download completed intact")
            self.assertTrue(self.all_go_to(m, "beta"))
            # The client connection that carried the old request keeps working.
            resp = slow.request("GET", "/again")
            self.assertEqual(resp.status, 200)

    # --------------------------------------------------------------- shutdown

    def test_sigterm_lets_download_finish_then_exits_zero(self):
        m = self.meridian().start()
        try:
            with RawConn(port=m.port, timeout=8) as c:
                c.send_request("GET", SLOW_PATH)
                head = c.read_head()
                self.assertEqual(head.status, 200)
                m.proc.send_signal(signal.SIGTERM)
                wait_for(lambda: refused(m.host, m.port), timeout=3,
                         message="new connections refused after SIGTERM")
                self.assertTrue(m.running(), "still serving the download")
                try:
                    resp = c.read_body(head)
                except IncompleteResponse as e:
                    self.fail("download cut by SIGTERM after %d of %d bytes"
                              % (e.partial.length, SLOW_N))
                sha = hashlib.sha256(resp.body).hexdigest()
                self.assertEqual((resp.length, sha), (SLOW_N, pattern_sha256(SLOW_N)),
                                 "download completed in full")
            try:
                code = m.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.fail("meridian still running 5 s after its last request finished")
            self.assertEqual(code, 0, "exit code after SIGTERM:\n" + m.stderr_text())
        finally:
            m.stop()
        self.assertIsNone(m.sanitizer_report(), m.sanitizer_report())

    def test_sigterm_with_idle_connections_exits_promptly(self):
        m = self.meridian().start()
        conns = []
        try:
            for i in range(3):
                c = RawConn(port=m.port, timeout=5)
                conns.append(c)
                self.assertEqual(c.request("GET", "/idle%d" % i).status, 200)
            start = time.monotonic()
            m.proc.send_signal(signal.SIGTERM)
            try:
                code = m.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.fail("meridian with only idle connections still running 3 s after SIGTERM "
                          "(shutdown_grace_ms is 10 s)")
            self.assertEqual(code, 0, m.stderr_text())
            self.assertLess(time.monotonic() - start, 2.0, "prompt exit")
            for c in conns:
                self.assertTrue(c.closed(2.0), "idle client connection closed")
        finally:
            for c in conns:
                c.close()
            m.stop()
        self.assertIsNone(m.sanitizer_report(), m.sanitizer_report())


if __name__ == "__main__":
    unittest.main()
