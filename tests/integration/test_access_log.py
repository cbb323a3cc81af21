"""tests/integration/test_access_log.py: one JSON line per request.

Keys: time, client, method, path, status, bytes_in, bytes_out, duration_ms,
decision ("sticky"|"geo"|"failover"|"fail_open"|"none"), region, cluster,
endpoint, country (null when unknown), generation, and "error" (the
cause) only where meridian answered with an error or cut the response.
Checked against what
the client sent and received on the wire: byte counts, the endpoint that
answered, the decision, the snapshot generation across a reload; a 400 for
a malformed request is logged with decision "none"; a refused connect, an
upstream that never answers and a body cut mid-way name their cause;
without access_log no file is written.
"""

import json
import os
import re
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (IncompleteResponse, Meridian, OriginTestCase, RawConn, addr,  # noqa: E402
                     deep_merge, region, request, wait_for, write_config)
from routing_helpers import (IP, AccessLog, cookie_fields, db, reload, set_cookie,  # noqa: E402
                             sign_cookie, write_keys)

KEY = ("k1", bytes(range(50, 82)))
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def raw_exchange(port, data, timeout=5):
    """Sends data on a fresh connection, reads until the server closes;
    returns every byte received."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            piece = s.recv(65536)
            if not piece:
                break
            out += piece
        return out


class AccessLogTest(OriginTestCase):
    TMP_PREFIX = "mr-alog-"

    @classmethod
    def origin_clusters(cls):
        cls.eu, cls.us = addr(), addr()
        return {"eu-a": [cls.eu], "us-a": [cls.us]}

    def write(self, overrides=None):
        cfg = {
            "geoip": {"database": db("geoip2.mmdb")},
            "health": {"interval_ms": 1000, "timeout_ms": 200},
            "regions": [
                {"name": "eu", "lat": 50.1, "lon": 8.7,
                 "clusters": [{"name": "eu-a", "weight": 100, "endpoints": [self.eu]}]},
                {"name": "us", "lat": 39.0, "lon": -77.5,
                 "clusters": [{"name": "us-a", "weight": 100, "endpoints": [self.us]}]},
            ],
            "routing": {"countries": {"GB": ["eu", "us"]}, "continents": {"NA": ["us"]},
                        "proximity": False, "default": ["us", "eu"]},
        }
        d = tempfile.mkdtemp(dir=self.tmp)
        path, cfg = write_config(d, deep_merge(cfg, overrides))
        write_keys(d, [KEY])
        return path, cfg

    def meridian(self, overrides=None):
        return Meridian(self.write(overrides)[0])

    def assert_complete(self, e, error=False):
        keys = AccessLog.KEYS + (("error",) if error else ())
        self.assertEqual(sorted(e), sorted(keys), "exactly the documented keys: %r" % e)
        self.assertRegex(e["time"], TIME_RE)
        self.assertIsInstance(e["duration_ms"], (int, float))
        self.assertGreaterEqual(e["duration_ms"], 0)

    # ---------------------------------------------------------------- fields

    def test_geo_request_all_fields(self):
        with self.meridian() as m:
            log = AccessLog(m.config["access_log"])
            sent = (b"GET /alog/one HTTP/1.1\r\nHost: edge.test\r\nX-Forwarded-For: "
                    + IP["GB"].encode() + b"\r\nConnection: close\r\n\r\n")
            before = time.time()
            got = raw_exchange(m.port, sent)
            head = got.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            self.assertTrue(head.startswith("HTTP/1.1 200"), head)
            e = log.entry("/alog/one")
            self.assert_complete(e)
            self.assertEqual(e["client"], IP["GB"])
            self.assertEqual((e["method"], e["path"], e["status"]), ("GET", "/alog/one", 200))
            self.assertEqual(e["bytes_in"], len(sent), "bytes_in: the request's bytes")
            self.assertEqual(e["bytes_out"], len(got), "bytes_out: every byte sent to the client")
            self.assertEqual((e["decision"], e["region"], e["cluster"], e["endpoint"]),
                             ("geo", "eu", "eu-a", self.eu))
            self.assertEqual((e["country"], e["generation"]), ("GB", 1))
            self.assertTrue(e["time"].startswith(time.strftime("%Y-%m-%d", time.gmtime(before)))
                            or e["time"].startswith(time.strftime("%Y-%m-%d", time.gmtime())),
                            "time is UTC now: %s" % e["time"])

    def test_body_bytes_counted(self):
        with self.meridian() as m:
            log = AccessLog(m.config["access_log"])
            body = b"x" * 3000
            sent = (b"POST /alog/post HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 3000\r\n"
                    b"Connection: close\r\n\r\n" + body)
            got = raw_exchange(m.port, sent)
            sent2 = b"GET /bytes?n=20000 HTTP/1.1\r\nHost: e\r\nConnection: close\r\n\r\n"
            got2 = raw_exchange(m.port, sent2)
            self.assertGreater(len(got2), 20000)
            e = log.entry("/alog/post")
            self.assert_complete(e)
            self.assertEqual((e["method"], e["status"]), ("POST", 200))
            self.assertEqual(e["bytes_in"], len(sent), "bytes_in includes the body")
            self.assertEqual(e["bytes_out"], len(got))
            # Loopback peer, no X-Forwarded-For: unknown, default region.
            self.assertEqual((e["client"], e["country"], e["decision"], e["cluster"]),
                             ("127.0.0.1", None, "geo", "us-a"))
            e2 = log.entry("/bytes?n=20000")
            self.assertEqual((e2["bytes_in"], e2["bytes_out"]), (len(sent2), len(got2)))

    def test_one_line_per_request_keepalive(self):
        with self.meridian() as m:
            log = AccessLog(m.config["access_log"])
            value = sign_cookie(KEY[0], KEY[1], "us-a")
            with RawConn(port=m.port, timeout=5) as c:
                paths = ["/alog/ka%d" % i for i in range(6)]
                for i, p in enumerate(paths):
                    hdrs = [("X-Forwarded-For", IP["GB"])]
                    if i % 2:
                        hdrs.append(("Cookie", "MRD=" + value))
                    self.assertEqual(c.request("GET", p, headers=hdrs).status, 200)
            wait_for(lambda: len(log.entries()) >= 6, timeout=5, message="six lines")
            time.sleep(0.3)  # more than one flush interval: nothing else comes
            entries = log.entries()
            self.assertEqual(sorted(e["path"] for e in entries), paths, "one line each")
            for e in entries:
                self.assert_complete(e)
                i = int(e["path"][-1])
                if i % 2:
                    self.assertEqual((e["decision"], e["region"], e["cluster"], e["endpoint"]),
                                     ("sticky", "us", "us-a", self.us), e)
                else:
                    self.assertEqual((e["decision"], e["cluster"], e["country"]),
                                     ("geo", "eu-a", "GB"), e)

    def test_generation_after_reload(self):
        with self.meridian() as m:
            log = AccessLog(m.config["access_log"])
            with RawConn(port=m.port, timeout=5) as c:
                c.request("GET", "/alog/gen1", headers=[("X-Forwarded-For", IP["US"])])
                self.assertEqual(log.entry("/alog/gen1")["generation"], 1)
                self.assertIn("generation 2", reload(m))
                c.request("GET", "/alog/gen2", headers=[("X-Forwarded-For", IP["US"])])
            resp = request(m.port, "GET", "/alog/gen2b", headers=[("X-Forwarded-For", IP["US"])])
            self.assertEqual(resp.status, 200)
            self.assertEqual(log.entry("/alog/gen2b")["generation"], 2)
            # docs/design.md: a request takes the snapshot when its head is parsed.
            self.assertEqual(log.entry("/alog/gen2")["generation"], 2,
                             "a kept-alive connection's next request: the new generation")
            self.assertIn("generation 3", reload(m))
            resp = request(m.port, "GET", "/alog/gen3")
            self.assertEqual(log.entry("/alog/gen3")["generation"], 3)

    def test_failover_and_new_cookie_logged(self):
        # us-a drained (soft): a US client fails over to eu.
        path, cfg = self.write({"routing": {"countries": {"US": ["us", "eu"]}}})
        cfg["regions"][1]["clusters"][0]["drain"] = {"mode": "soft"}
        with open(path, "w") as f:
            json.dump(cfg, f)
        with Meridian(path) as m:
            resp = request(m.port, "GET", "/alog/fo", headers=[("X-Forwarded-For", IP["US"])])
            self.assertEqual(cookie_fields(set_cookie(resp)[0])["cluster"], "eu-a")
            e = AccessLog(m.config["access_log"]).entry("/alog/fo")
            self.assertEqual((e["decision"], e["region"], e["cluster"], e["country"]),
                             ("failover", "eu", "eu-a", "US"))

    # ----------------------------------------------------------------- errors

    def test_malformed_request_logged_with_decision_none(self):
        with self.meridian() as m:
            log = AccessLog(m.config["access_log"])
            sent = b"GET /alog/bad HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n"
            got = raw_exchange(m.port, sent)
            self.assertTrue(got.startswith(b"HTTP/1.1 400"), got[:40])
            e = wait_for(lambda: [x for x in log.entries() if x["status"] == 400], timeout=5,
                         message="a line for the 400")
            self.assertEqual(len(e), 1, "one line: %r" % e)
            e = e[0]
            self.assert_complete(e, error=True)
            self.assertEqual((e["status"], e["decision"]), (400, "none"))
            self.assertEqual(e["error"], "bad request")
            self.assertEqual(e["bytes_out"], len(got), "the 400's bytes")
            self.assertEqual(e["generation"], 1)
            self.assertIsNone(e["cluster"], "no cluster for a refused request")
            self.assertIsNone(e["endpoint"])

    def test_no_access_log_configured_no_file(self):
        path, cfg = self.write()
        del cfg["access_log"]
        with open(path, "w") as f:
            json.dump(cfg, f)
        d = os.path.dirname(path)
        before = set(os.listdir(d))
        with Meridian(path) as m:
            for i in range(3):
                resp = request(m.port, "GET", "/alog/none%d" % i,
                               headers=[("X-Forwarded-For", IP["GB"])])
                self.assertEqual(resp.status, 200)
            time.sleep(0.3)  # more than one flush interval
            created = set(os.listdir(d)) - before
            self.assertFalse([n for n in created if not n.startswith(("meridian.", "state"))],
                             "files written without access_log: %r" % created)
            self.assertNotIn("/alog/none", m.stderr_text(), "no access lines on stdout/stderr")
        self.assertFalse(os.path.exists(os.path.join(d, "access.log")))



class ErrorFieldTest(OriginTestCase):
    """"error": present, naming the cause, exactly on the lines of exchanges
    that meridian answered with an error of its own or cut."""

    RESPONSE_MS = 500
    TMP_PREFIX = "mr-alog-err-"

    @classmethod
    def origin_clusters(cls):
        cls.live = addr()
        return {"main": [cls.live]}

    def meridian(self, endpoints):
        # Health checks too rare to mark a dead endpoint down during a test:
        # the data path meets the failure itself.
        cfg = {"health": {"interval_ms": 60000, "timeout_ms": 1000, "fall": 5},
               "timeouts": {"upstream_connect_ms": 300,
                            "upstream_response_ms": self.RESPONSE_MS},
               "regions": [region("r1", {"main": endpoints})],
               "routing": {"default": ["r1"]}}
        path, _ = write_config(tempfile.mkdtemp(dir=self.tmp), cfg)
        return Meridian(path)

    def test_connect_refused_502(self):
        dead = addr()
        with self.meridian([dead]) as m:
            resp = request(m.port, "GET", "/alog/refused", timeout=5)
            self.assertEqual(resp.status, 502)
            e = AccessLog(m.config["access_log"]).entry("/alog/refused")
            self.assertEqual((e["status"], e["endpoint"], e["error"]),
                             (502, dead, "upstream connect failed"))

    def test_response_timeout_504(self):
        with self.meridian([self.live]) as m:
            resp = request(m.port, "GET", "/hang", timeout=5)
            self.assertEqual(resp.status, 504)
            e = AccessLog(m.config["access_log"]).entry("/hang")
            self.assertEqual((e["status"], e["endpoint"], e["error"]),
                             (504, self.live, "upstream response timeout"))

    def test_cut_body_keeps_status_and_names_cause(self):
        with self.meridian([self.live]) as m, RawConn(port=m.port, timeout=5) as c:
            c.send_request("GET", "/close-mid?n=100000&after=1000")
            with self.assertRaises(IncompleteResponse):
                c.read_response()
            e = AccessLog(m.config["access_log"]).entry("/close-mid?n=100000&after=1000")
            self.assertEqual((e["status"], e["error"]), (200, "upstream closed mid body"),
                             "the origin's status, and why the client saw it cut")

    def test_no_error_field_when_served(self):
        with self.meridian([self.live]) as m:
            self.assertEqual(request(m.port, "GET", "/alog/fine", timeout=5).status, 200)
            e = AccessLog(m.config["access_log"]).entry("/alog/fine")
            self.assertNotIn("error", e)
            self.assertEqual(sorted(e), sorted(AccessLog.KEYS))


if __name__ == "__main__":
    unittest.main()
