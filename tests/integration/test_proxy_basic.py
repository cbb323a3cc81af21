"""tests/integration/test_proxy_basic.py: meridian's HTTP/1.1 data path.

Keep-alive on both sides, pipelining, hop-by-hop header removal,
X-Forwarded-For / X-Forwarded-Proto, framing of responses without a body,
Connection: close and HTTP/1.0, weighted cluster choice and the two endpoint
policies. Every check is what a client or the origin sees on the wire.
"""

import collections
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Meridian, OriginTestCase, RawConn, addr, deep_merge,  # noqa: E402
                     pattern_sha256, region, request, wait_for, write_config)

# The harness default has health.timeout_ms 200 > interval_ms 100, which
# meridian refuses; every config here starts from a valid health section.
BASE = {
    "health": {"interval_ms": 1000, "timeout_ms": 200},
    "timeouts": {"client_header_ms": 2000, "client_idle_ms": 5000,
                 "upstream_connect_ms": 300, "upstream_response_ms": 3000},
}

HOP_BY_HOP = ("connection", "keep-alive", "te", "trailer", "upgrade", "proxy-connection",
              "x-secret")


class ProxyTest(OriginTestCase):
    """One origin for the class: cluster "main" (one endpoint), "pair" (two
    endpoints), "heavy"/"light"/"zero" for weights."""

    TMP_PREFIX = "mr-basic-"

    @classmethod
    def origin_clusters(cls):
        cls.main = [addr()]
        cls.pair = [addr(), addr()]
        cls.heavy, cls.light, cls.zero = [addr()], [addr()], [addr()]
        return {"main": cls.main, "pair": cls.pair, "heavy": cls.heavy, "light": cls.light,
                "zero": cls.zero}

    def meridian(self, clusters, overrides=None):
        """A Meridian (not started) whose default region holds clusters."""
        cfg = deep_merge(BASE, {"regions": [region("r1", clusters)],
                                "routing": {"default": ["r1"]}})
        cfg = deep_merge(cfg, overrides)
        path, _ = write_config(tempfile.mkdtemp(dir=self.tmp), cfg)
        return Meridian(path)

    def logged(self, mark, count, timeout=5.0):
        """The origin's log entries after mark, once there are count of them."""
        return wait_for(lambda: (lambda e: e if len(e) >= count else None)(
            self.origin.requests(since=mark)), timeout=timeout,
            message="origin logged %d requests" % count)

    # ------------------------------------------------------------ keep-alive

    def test_keepalive_both_sides(self):
        with self.meridian({"main": self.main}) as m, RawConn(port=m.port, timeout=5) as c:
            resps = [c.request("GET", "/ka%d" % i) for i in range(4)]
            self.assertEqual([r.status for r in resps], [200] * 4)
            self.assertEqual([r.json()["path"] for r in resps], ["/ka0", "/ka1", "/ka2", "/ka3"],
                             "all four answered on the one client connection")
            conns = {r.get("X-Origin-Conn") for r in resps}
            self.assertEqual(len(conns), 1, "sequential requests reuse one upstream connection")
            self.assertEqual([r.get("X-Origin-Request") for r in resps], ["1", "2", "3", "4"],
                             "upstream connection carried all four")
            self.assertFalse(c.closed(0.2), "client connection kept open")

    def test_pipelined_requests_answered_in_order(self):
        with self.meridian({"main": self.main}) as m, RawConn(port=m.port, timeout=5) as c:
            c.send(b"GET /p1?delay_ms=150 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"POST /p2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                   b"GET /bytes?n=1000 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /p4 HTTP/1.1\r\nHost: x\r\n\r\n")
            r1, r2, r3, r4 = (c.read_response() for _ in range(4))
            self.assertEqual(r1.json()["path"], "/p1?delay_ms=150", "slow first answer first")
            self.assertEqual((r2.json()["path"], r2.json()["body_length"]), ("/p2", 5),
                             "second with its body")
            self.assertEqual((r3.length, len(r3.body)), (1000, 1000), "third: the bytes")
            self.assertEqual(r4.json()["path"], "/p4", "fourth")
            r5 = c.request("GET", "/after")
            self.assertEqual(r5.json()["path"], "/after", "connection usable after the pipeline")

    def test_half_closed_pipeline_answered_then_closed(self):
        # A client that sends its requests and shuts its side (printf | nc)
        # still gets every answer, the malformed last one a 400, then EOF.
        with self.meridian({"main": self.main}) as m, RawConn(port=m.port, timeout=5) as c:
            c.send(b"GET /h1 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /h2?delay_ms=50 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /h3 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GARBAGE\r\n\r\n")
            c.shutdown_write()
            paths = [c.read_response().json()["path"] for _ in range(3)]
            self.assertEqual(paths, ["/h1", "/h2?delay_ms=50", "/h3"])
            self.assertEqual(c.read_response().status, 400)
            self.assertTrue(c.closed(2.0), "closed after the last answer")

    def test_malformed_request_after_a_good_one_gets_400(self):
        with self.meridian({"main": self.main}) as m, RawConn(port=m.port, timeout=5) as c:
            self.assertEqual(c.request("GET", "/good").status, 200)
            c.send(b"GET /bad HTTP/1.1\nHost: x\n\n")
            self.assertEqual(c.read_response().status, 400)
            self.assertTrue(c.closed(2.0))

    # --------------------------------------------------------------- headers

    def test_hop_by_hop_headers_removed(self):
        with self.meridian({"main": self.main}) as m, RawConn(port=m.port, timeout=5) as c:
            mark = self.origin.mark()
            resp = c.request("GET", "/hop", headers=[
                ("Connection", "keep-alive, X-Secret"), ("X-Secret", "1"),
                ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Trailer", "X-Sum"),
                ("Upgrade", "h2c"), ("Proxy-Connection", "keep-alive"),
                ("X-End-To-End", "kept"), ("User-Agent", "meridian-test/1"),
                ("Accept", "*/*")])
            self.assertEqual(resp.status, 200)
            seen = resp.json()["headers"]
            for name in HOP_BY_HOP:
                self.assertNotIn(name, seen, "hop-by-hop %s reached the origin" % name)
            self.assertEqual(seen.get("x-end-to-end"), "kept", "end-to-end header forwarded")
            self.assertEqual(seen.get("user-agent"), "meridian-test/1")
            self.assertEqual(seen.get("accept"), "*/*")
            entry = self.logged(mark, 1)[0]
            names = {n.lower() for n, _ in entry["headers"]}
            self.assertFalse(names & set(HOP_BY_HOP), "origin log: %r" % entry["headers"])

    def test_header_named_in_connection_close_removed(self):
        with self.meridian({"main": self.main}) as m, RawConn(port=m.port, timeout=5) as c:
            resp = c.request("GET", "/hop2", headers=[("Connection", "close, X-Secret"),
                                                      ("X-Secret", "1"), ("X-Other", "2")])
            seen = resp.json()["headers"]
            self.assertNotIn("x-secret", seen, "header listed in Connection removed")
            self.assertNotIn("connection", seen)
            self.assertEqual(seen.get("x-other"), "2")

    def test_forwarded_headers_trusted_peer(self):
        with self.meridian({"main": self.main},
                           {"trusted_proxies": ["127.0.0.0/8", "::1/128"]}) as m:
            resp = request(m.port, "GET", "/xff", headers={"X-Forwarded-For": "1.2.3.4"})
            seen = resp.json()["headers"]
            self.assertEqual(seen.get("x-forwarded-for"), "1.2.3.4, 127.0.0.1",
                             "trusted peer: list kept, peer appended")
            self.assertEqual(seen.get("x-forwarded-proto"), "http")
            resp = request(m.port, "GET", "/xff2")
            self.assertEqual(resp.json()["headers"].get("x-forwarded-for"), "127.0.0.1",
                             "no incoming list: the peer alone")

    def test_forwarded_headers_untrusted_peer(self):
        with self.meridian({"main": self.main}, {"trusted_proxies": []}) as m:
            resp = request(m.port, "GET", "/xff", headers=[("X-Forwarded-For", "1.2.3.4"),
                                                          ("X-Forwarded-For", "5.6.7.8"),
                                                          ("X-Forwarded-Proto", "https")])
            seen = resp.json()["headers"]
            self.assertEqual(seen.get("x-forwarded-for"), "127.0.0.1",
                             "untrusted peer: incoming XFF replaced by the peer address")
            self.assertEqual(seen.get("x-forwarded-proto"), "http",
                             "X-Forwarded-Proto set by the edge, not the client")

    # ------------------------------------------------------- bodiless framing

    def test_head_204_304_framing(self):
        with self.meridian({"main": self.main}) as m, RawConn(port=m.port, timeout=5) as c:
            resp = c.request("HEAD", "/bytes?n=500")
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.get("Content-Length"), "500", "HEAD keeps GET's length")
            resp = c.request("GET", "/after-head")
            self.assertEqual(resp.json()["path"], "/after-head",
                             "no body after HEAD (else this answer is misparsed)")
            for status in (204, 304):
                resp = c.request("GET", "/s?status=%d" % status)
                self.assertEqual(resp.status, status)
                self.assertIsNone(resp.get("Transfer-Encoding"), "%d not chunked" % status)
                self.assertIn(resp.get("Content-Length"), (None, "0"), "%d has no body" % status)
                resp = c.request("GET", "/after-%d" % status)
                self.assertEqual(resp.json()["path"], "/after-%d" % status,
                                 "framing intact after %d" % status)
            c.send(b"GET /tail HTTP/1.1\r\nHost: x\r\n\r\n")
            resp = c.read_response()
            self.assertEqual(resp.json()["path"], "/tail")
            self.assertFalse(c.closed(0.1), "no stray bytes, connection open")

    # ------------------------------------------------------ connection close

    def test_connection_close_from_client(self):
        with self.meridian({"main": self.main}) as m, RawConn(port=m.port, timeout=5) as c:
            resp = c.request("GET", "/bye", headers={"Connection": "close"})
            self.assertEqual(resp.status, 200)
            self.assertEqual((resp.get("Connection") or "").lower(), "close",
                             "response announces Connection: close")
            self.assertTrue(c.closed(2.0), "edge closes after Connection: close")

    def test_http10_request(self):
        with self.meridian({"main": self.main}) as m, RawConn(port=m.port, timeout=5) as c:
            c.send(b"GET /old HTTP/1.0\r\n\r\n")
            resp = c.read_response()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.json()["path"], "/old")
            self.assertTrue(c.closed(2.0), "HTTP/1.0 connection closed after the response")
        with self.meridian({"main": self.main}) as m, RawConn(port=m.port, timeout=5) as c:
            c.send(b"GET /bytes?n=70000&chunked=1 HTTP/1.0\r\nHost: x\r\n\r\n")
            resp = c.read_response_hashed()
            self.assertEqual(resp.status, 200)
            self.assertNotEqual(resp.framing, "chunked", "no chunked answer to HTTP/1.0")
            self.assertEqual((resp.length, resp.sha256), (70000, pattern_sha256(70000)))
            self.assertTrue(c.closed(2.0))

    # ------------------------------------------------------------- weights

    def test_weighted_clusters(self):
        n = 400
        with self.meridian({"heavy": (self.heavy, 3), "light": (self.light, 1),
                            "zero": (self.zero, 0)}) as m:
            counts = collections.Counter()
            for i in range(n):
                with RawConn(port=m.port, timeout=5) as c:
                    resp = c.request("GET", "/w%d" % i, headers={"Connection": "close"})
                    self.assertEqual(resp.status, 200)
                    counts[resp.get("X-Origin-Cluster")] += 1
        self.assertEqual(counts["zero"], 0, "weight 0 cluster takes nothing: %r" % counts)
        self.assertEqual(counts["heavy"] + counts["light"], n, "%r" % counts)
        self.assertTrue(240 <= counts["heavy"] <= 355, "3:1 split, heavy: %r" % counts)
        self.assertTrue(45 <= counts["light"] <= 160, "3:1 split, light: %r" % counts)

    # ------------------------------------------------------------ policies

    def test_round_robin_alternates(self):
        with self.meridian({"pair": self.pair},
                           {"routing": {"endpoint_policy": "round_robin"}}) as m:
            with RawConn(port=m.port, timeout=5) as c:
                eps = [c.request("GET", "/rr%d" % i).get("X-Origin-Endpoint") for i in range(8)]
        self.assertEqual(set(eps), set(self.pair), "both endpoints used: %r" % eps)
        for a, b in zip(eps, eps[1:]):
            self.assertNotEqual(a, b, "round robin alternates: %r" % eps)

    def test_least_requests_avoids_busy_endpoint(self):
        # One worker so the outstanding counts seen by every pick are the same.
        with self.meridian({"pair": self.pair},
                           {"workers": 1, "routing": {"endpoint_policy": "least_requests"}}) as m:
            with RawConn(port=m.port, timeout=8) as slow:
                slow.send_request("GET", "/slow?n=20&every_ms=50&step=1")
                head = slow.read_head()
                busy = head.get("X-Origin-Endpoint")
                self.assertIn(busy, self.pair)
                eps = []
                for i in range(6):
                    eps.append(request(m.port, "GET", "/lr%d" % i, timeout=5)
                               .get("X-Origin-Endpoint"))
                resp = slow.read_body(head)
                self.assertEqual(resp.length, 20, "slow download completed")
            idle = [a for a in self.pair if a != busy][0]
            self.assertEqual(eps, [idle] * 6,
                             "picks avoid %s while its slow request is in flight" % busy)


if __name__ == "__main__":
    unittest.main()
