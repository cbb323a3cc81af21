"""tests/integration/test_proxy_errors.py: what meridian does when things go wrong.

Malformed or oversized requests are refused with the right status, the
connection is closed, and nothing reaches the origin. Slow clients and idle
connections time out; an upstream that never answers gives 504; an endpoint
that refuses connections is retried once on the other endpoint (any
method: nothing was sent), and a cluster with no live endpoint gives 502.
"""

import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (IncompleteResponse, Meridian, Origin, OriginTestCase, RawConn,  # noqa: E402
                     addr, deep_merge, region, request, wait_for, write_config)

HEADER_MS = 400
IDLE_MS = 600
RESPONSE_MS = 700
MAX_HEAD = 4096
MAX_HEADERS = 20
MAX_URI = 1024

BASE = {
    # Health checks too rare to mark a dead endpoint down during a test (the
    # first check runs at start, then one a minute; fall 5): requests still
    # reach the dead endpoint, so the data path's retry is what is tested.
    "health": {"interval_ms": 60000, "timeout_ms": 1000, "fall": 5},
    "timeouts": {"client_header_ms": HEADER_MS, "client_idle_ms": IDLE_MS,
                 "upstream_connect_ms": 300, "upstream_response_ms": RESPONSE_MS},
    "limits": {"max_head_bytes": MAX_HEAD, "max_headers": MAX_HEADERS,
               "max_uri_bytes": MAX_URI},
}

H = b"Host: x\r\n"

# (name, raw request, expected status)
MALFORMED = [
    ("content-length and transfer-encoding",
     b"POST /m HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400),
    ("transfer-encoding gzip",
     b"POST /m HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc", 400),
    ("transfer-encoding chunked, gzip",
     b"POST /m HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 400),
    ("transfer-encoding gzip, chunked",
     b"POST /m HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400),
    ("transfer-encoding on HTTP/1.0",
     b"POST /m HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
     400),
    ("duplicate differing content-length",
     b"POST /m HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    ("space in a header name",
     b"GET /m HTTP/1.1\r\n" + H + b"Bad Header: y\r\n\r\n", 400),
    ("space before the colon",
     b"GET /m HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    ("control character in a header value",
     b"GET /m HTTP/1.1\r\n" + H + b"X-Ctl: a\x01b\r\n\r\n", 400),
    ("bare LF line endings",
     b"GET /m HTTP/1.1\nHost: x\nX-A: b\n\n", 400),
    ("obs-fold",
     b"GET /m HTTP/1.1\r\n" + H + b"X-Fold: a\r\n  b\r\n\r\n", 400),
    ("missing Host on HTTP/1.1",
     b"GET /m HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    ("HTTP/2.0 request line",
     b"GET /m HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("URI too long",
     b"GET /" + b"u" * (MAX_URI + 10) + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("too many headers",
     b"GET /m HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 5))
     + b"\r\n", 431),
    ("head too large",
     b"GET /m HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * (MAX_HEAD + 500) + b"\r\n\r\n", 431),
]


class ErrorsTest(OriginTestCase):
    TMP_PREFIX = "mr-errors-"

    @classmethod
    def origin_clusters(cls):
        cls.live = addr()
        return {"main": [cls.live]}

    def meridian(self, endpoints, overrides=None):
        cfg = deep_merge(BASE, {"regions": [region("r1", {"main": endpoints})],
                                "routing": {"default": ["r1"]}})
        path, _ = write_config(tempfile.mkdtemp(dir=self.tmp), deep_merge(cfg, overrides))
        return Meridian(path)

    def check_nothing_forwarded(self, m, mark, tag):
        """Sends GET /marker-TAG through m, waits for it in the origin's log and
        asserts that nothing else was logged since mark."""
        resp = request(m.port, "GET", "/marker-" + tag, timeout=5)
        self.assertEqual(resp.status, 200, "marker request")
        entries = wait_for(lambda: (lambda e: e if any(x["path"] == "/marker-" + tag for x in e)
                                    else None)(self.origin.requests(since=mark)),
                           timeout=5, message="marker logged")
        # Health checks reach the origin on their own schedule: not requests.
        others = [e for e in entries if e["path"] != "/marker-" + tag and e["path"] != "/healthz"]
        self.assertEqual(others, [], "%s: the origin received %r" % (tag, others))

    # -------------------------------------------------------------- malformed

    def test_malformed_requests_refused_and_not_forwarded(self):
        with self.meridian([self.live]) as m:
            for i, (name, raw, status) in enumerate(MALFORMED):
                with self.subTest(name):
                    mark = self.origin.mark()
                    with RawConn(port=m.port, timeout=5) as c:
                        c.send(raw)
                        try:
                            resp = c.read_response()
                        except Exception as e:  # noqa: BLE001 - reported as a failure
                            self.fail("%s: no response (%r), got %r" % (name, e, bytes(c.buf)))
                        self.assertEqual(resp.status, status, "%s: status" % name)
                        self.assertTrue(c.closed(2.0), "%s: connection closed after %d"
                                        % (name, status))
                    self.check_nothing_forwarded(m, mark, "m%d" % i)

    def test_valid_edge_cases_still_accepted(self):
        # The refusals above are not a blanket ban: these are fine.
        with self.meridian([self.live]) as m, RawConn(port=m.port, timeout=5) as c:
            c.send(b"POST /ok HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc")
            resp = c.read_response()
            self.assertEqual(resp.status, 200, "plain Content-Length body")
            self.assertEqual(resp.json()["body_length"], 3)
            c.send(b"GET /ok2 HTTP/1.1\r\n" + H + b"X-Tab: a\tb\r\n\r\n")
            resp = c.read_response()
            self.assertEqual(resp.status, 200, "tab inside a header value")
            c.send(b"GET /" + b"u" * (MAX_URI - 50) + b" HTTP/1.1\r\n" + H + b"\r\n")
            self.assertEqual(c.read_response().status, 200, "URI under the limit")

    # --------------------------------------------------------------- timeouts

    def test_slow_client_head_gets_408(self):
        with self.meridian([self.live]) as m, RawConn(port=m.port, timeout=5) as c:
            mark = self.origin.mark()
            start = time.monotonic()
            c.send(b"GET /slowhead HTTP/1.1\r\nHost: x\r\nX-Partial: ")
            resp = c.read_response()
            elapsed = time.monotonic() - start
            self.assertEqual(resp.status, 408)
            self.assertGreaterEqual(elapsed, HEADER_MS / 1000 * 0.8,
                                    "408 not before client_header_ms")
            self.assertLess(elapsed, HEADER_MS / 1000 + 1.5, "408 about client_header_ms")
            self.assertTrue(c.closed(2.0), "closed after 408")
            self.check_nothing_forwarded(m, mark, "slowhead")

    def test_idle_keepalive_connection_closed(self):
        with self.meridian([self.live]) as m, RawConn(port=m.port, timeout=5) as c:
            resp = c.request("GET", "/idle")
            self.assertEqual(resp.status, 200)
            start = time.monotonic()
            closed = wait_for(lambda: c.closed(0.1), timeout=IDLE_MS / 1000 + 2.0,
                              raise_on_timeout=False)
            elapsed = time.monotonic() - start
            self.assertTrue(closed, "idle keep-alive connection closed after client_idle_ms")
            self.assertEqual(bytes(c.buf), b"", "closed silently")
            self.assertGreaterEqual(elapsed, IDLE_MS / 1000 * 0.8, "not before client_idle_ms")

    def test_upstream_never_answers_504(self):
        with self.meridian([self.live]) as m, RawConn(port=m.port, timeout=5) as c:
            start = time.monotonic()
            resp = c.request("GET", "/hang")
            elapsed = time.monotonic() - start
            self.assertEqual(resp.status, 504)
            self.assertGreaterEqual(elapsed, RESPONSE_MS / 1000 * 0.9,
                                    "504 not before upstream_response_ms")
            self.assertLess(elapsed, RESPONSE_MS / 1000 + 2.0, "504 about upstream_response_ms")

    # ---------------------------------------------------------- connect fails

    def assert_not_marked_down(self, m, endpoint):
        """The dead endpoint was still up for the checker: the retry (or the
        502) came from the data path, not from the health state."""
        self.assertNotIn("health: main %s down" % endpoint, m.stderr_text(),
                         "%s marked down: the retry path was not exercised" % endpoint)

    def test_connect_failure_get_retried_on_other_endpoint(self):
        dead = addr()
        for policy in ("round_robin", "least_requests"):
            with self.subTest(policy):
                with self.meridian([dead, self.live],
                                   {"routing": {"endpoint_policy": policy}}) as m:
                    for i in range(6):
                        resp = request(m.port, "GET", "/retry%d" % i, timeout=5)
                        self.assertEqual(resp.status, 200, "%s: GET %d retried" % (policy, i))
                        self.assertEqual(resp.get("X-Origin-Endpoint"), self.live)
                    with RawConn(port=m.port, timeout=5) as c:
                        for i in range(4):
                            resp = c.request("GET", "/retry-ka%d" % i)
                            self.assertEqual((resp.status, resp.get("X-Origin-Endpoint")),
                                             (200, self.live), "keep-alive GET %d" % i)
                    self.assert_not_marked_down(m, dead)

    def test_connect_failure_post_resent(self):
        # One worker and round robin: every other pick is the dead endpoint.
        # Nothing reached it, so a POST (with its body) goes to the other.
        dead = addr()
        with self.meridian([dead, self.live], {"workers": 1,
                                               "routing": {"endpoint_policy": "round_robin"}}) as m:
            mark = self.origin.mark()
            for i in range(4):
                resp = request(m.port, "POST", "/post%d" % i, body=b"payload", timeout=5)
                self.assertEqual((resp.status, resp.get("X-Origin-Endpoint")), (200, self.live),
                                 "POST %d after a connect failure" % i)
            posts = [e for e in self.origin.requests(since=mark) if e["method"] == "POST"]
            self.assertEqual(len(posts), 4, "each POST reached the origin once")
            self.assert_not_marked_down(m, dead)

    def test_upstream_closes_before_answering_502(self):
        with self.meridian([self.live]) as m:
            resp = request(m.port, "GET", "/close-now", timeout=5)
            self.assertEqual(resp.status, 502, "upstream closed without a byte")
            resp = request(m.port, "GET", "/ok-after-502", timeout=5)
            self.assertEqual(resp.status, 200, "the edge serves on afterwards")

    def test_upstream_closes_mid_body_client_sees_truncation(self):
        with self.meridian([self.live]) as m, RawConn(port=m.port, timeout=5) as c:
            c.send_request("GET", "/close-mid?n=100000&after=1000")
            with self.assertRaises(IncompleteResponse,
                                   msg="a cut upstream body must not look complete to the client"):
                c.read_response()
            self.assertTrue(c.eof or c.closed(2.0), "client connection closed")

    def test_stale_pooled_upstream_connection(self):
        ep = addr()
        origin = Origin({"solo": [ep]}).start()
        try:
            with self.meridian([ep]) as m, RawConn(port=m.port, timeout=5) as c:
                first = c.request("GET", "/before")
                self.assertEqual(first.status, 200)
                origin.stop()
                origin.remove_files()
                origin = Origin({"solo": [ep]}).start()
                resp = c.request("GET", "/after-restart")
                self.assertEqual(resp.status, 200,
                                 "GET after the origin restarted (pooled connection stale)")
                self.assertEqual(resp.json()["path"], "/after-restart")
        finally:
            origin.stop()
            origin.remove_files()

    def test_all_endpoints_dead_502(self):
        with self.meridian([addr(), addr()]) as m:
            resp = request(m.port, "GET", "/dead", timeout=5)
            self.assertEqual(resp.status, 502, "GET with both endpoints dead")
            with RawConn(port=m.port, timeout=5) as c:
                resp = c.request("POST", "/dead", body=b"x" * 1000)
                self.assertEqual(resp.status, 502, "POST with a body, both endpoints dead")
            resp = request(m.port, "POST", "/dead", headers={"Transfer-Encoding": "chunked"},
                           body=b"5\r\nhello\r\n0\r\n\r\n", timeout=5)
            self.assertEqual(resp.status, 502, "chunked POST, both endpoints dead")
            self.assertTrue(m.running(), "still up")


if __name__ == "__main__":
    unittest.main()
