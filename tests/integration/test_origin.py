"""tests/integration/test_origin.py: the test origin itself, without meridian.

Every other integration test trusts what the origin reports (cluster,
endpoint, connection reuse, byte patterns), so its own behaviour is pinned
here first: naming headers, keep-alive and pipelining, streamed bodies both
ways, framing of special statuses, and the misbehaving routes.
"""

import hashlib
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (IncompleteResponse, Origin, RawConn, free_port, pattern_chunks,  # noqa: E402
                     instrumented, ipv6_loopback, pattern_sha256, request, rss_kib, split_addr,
                     wait_for)


class OriginTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a1 = "127.0.0.1:%d" % free_port()
        cls.a2 = "127.0.0.1:%d" % free_port()
        cls.b1 = "127.0.0.1:%d" % free_port()
        cls.origin = Origin({"alpha": [cls.a1, cls.a2], "beta": [cls.b1]}).start()
        cls.port = split_addr(cls.a1)[1]

    @classmethod
    def tearDownClass(cls):
        code = cls.origin.stop()
        assert code == 0, "origin exit code on SIGTERM: %r\n%s" % (code, cls.origin.stderr_text())
        cls.origin.remove_files()

    def conn(self, addr=None, timeout=5.0):
        host, port = split_addr(addr or self.a1)
        return RawConn(host, port, timeout)

    def test_names_cluster_endpoint_connection_request(self):
        for addr, cluster in ((self.a1, "alpha"), (self.a2, "alpha"), (self.b1, "beta")):
            resp = request(split_addr(addr)[1], "GET", "/who?x=1&y=%22")
            self.assertEqual(resp.status, 200, "status from %s" % addr)
            self.assertEqual(resp.get("X-Origin-Cluster"), cluster, "cluster header")
            self.assertEqual(resp.get("X-Origin-Endpoint"), addr, "endpoint header")
            self.assertEqual(resp.get("X-Origin-Request"), "1", "first request on a connection")
            self.assertTrue(resp.get("X-Origin-Conn").isdigit(), "conn header is a number")
            self.assertEqual(resp.get("Content-Type"), "application/json")
            body = resp.json()
            self.assertEqual(body["cluster"], cluster, "cluster in body")
            self.assertEqual(body["endpoint"], addr, "endpoint in body")
            self.assertEqual(body["method"], "GET")
            self.assertEqual(body["path"], "/who?x=1&y=%22", "full target in body")
            self.assertEqual(str(body["conn"]), resp.get("X-Origin-Conn"), "conn in body")

    def test_default_body_headers_are_lowercased_and_escaped(self):
        resp = request(self.port, "GET", "/h", headers=[("X-Quote", 'a"b\\c'), ("X-Dup", "1"),
                                                        ("x-dup", "2")])
        headers = resp.json()["headers"]
        self.assertEqual(headers["x-quote"], 'a"b\\c', "escaped value survives JSON")
        self.assertEqual(headers["x-dup"], "1, 2", "repeated header joined")
        self.assertIn("host", headers, "names lower-cased")

    def test_keepalive_reuses_connection(self):
        with self.conn() as c:
            r1 = c.request("GET", "/one")
            r2 = c.request("POST", "/two", body=b"abc")
            self.assertEqual(r1.get("X-Origin-Conn"), r2.get("X-Origin-Conn"), "same connection")
            self.assertEqual((r1.get("X-Origin-Request"), r2.get("X-Origin-Request")), ("1", "2"))
            self.assertEqual(r2.json()["body_length"], 3, "request body read")
        with self.conn() as c:
            r3 = c.request("GET", "/three")
        self.assertNotEqual(r3.get("X-Origin-Conn"), r1.get("X-Origin-Conn"), "new connection")

    def test_connection_close_and_http10(self):
        with self.conn() as c:
            resp = c.request("GET", "/", headers={"Connection": "close"})
            self.assertEqual(resp.get("Connection"), "close", "close announced")
            self.assertTrue(c.closed(), "closed after Connection: close")
        with self.conn() as c:
            resp = c.request("GET", "/", version="1.0")
            self.assertEqual(resp.status, 200)
            self.assertTrue(c.closed(), "HTTP/1.0 without keep-alive closes")
        with self.conn() as c:
            resp = c.request("GET", "/", headers={"Connection": "keep-alive"}, version="1.0")
            self.assertEqual(resp.get("Connection"), "keep-alive", "1.0 keep-alive honoured")
            self.assertFalse(c.closed(0.2), "kept open")
            # A chunked answer cannot go to an HTTP/1.0 client: read until close instead.
            resp = c.request("GET", "/bytes?n=1000&chunked=1", version="1.0")
            self.assertEqual(resp.framing, "close", "1.0 streamed body framed by close")
            self.assertEqual(len(resp.body), 1000)

    def test_pipelined_requests_answered_in_order(self):
        with self.conn() as c:
            c.send(b"GET /p1?delay_ms=100 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                   b"GET /bytes?n=10 HTTP/1.1\r\nHost: x\r\n\r\n"
                   b"GET /p4 HTTP/1.1\r\nHost: x\r\n\r\n")
            r1, r2, r3, r4 = (c.read_response() for _ in range(4))
        self.assertEqual([r.get("X-Origin-Request") for r in (r1, r2, r3, r4)],
                         ["1", "2", "3", "4"], "answered in order")
        self.assertEqual(r1.json()["path"], "/p1?delay_ms=100", "delayed first answer first")
        self.assertEqual(r2.json()["length"], 5, "sink in the middle")
        self.assertEqual(r3.body, bytes((i * 31 + 7) & 0xFF for i in range(10)), "pattern")
        self.assertEqual(r4.json()["path"], "/p4")

    def test_bytes_content_length(self):
        with self.conn() as c:
            for n in (0, 1, 300000):
                c.send_request("GET", "/bytes?n=%d" % n)
                resp = c.read_response_hashed()
                self.assertEqual(resp.framing, "length", "n=%d framed by length" % n)
                self.assertEqual(resp.get("Content-Length"), str(n))
                self.assertEqual((resp.length, resp.sha256), (n, pattern_sha256(n)), "n=%d" % n)

    def test_bytes_chunked(self):
        with self.conn() as c:
            c.send_request("GET", "/bytes?n=100001&chunked=1&chunk=1000")
            resp = c.read_response_hashed()
            self.assertEqual(resp.framing, "chunked")
            self.assertIsNone(resp.get("Content-Length"), "no length when chunked")
            self.assertEqual((resp.length, resp.sha256), (100001, pattern_sha256(100001)))
            resp = c.request("GET", "/bytes?n=70000&chunked=1")
            self.assertEqual(resp.body, b"".join(pattern_chunks(70000)), "default chunk size")

    def test_large_download_streams(self):
        n = 64 << 20
        before = rss_kib(self.origin.pid)
        with self.conn() as c:
            c.send_request("GET", "/bytes?n=%d" % n)
            resp = c.read_response_hashed()
        self.assertEqual((resp.length, resp.sha256), (n, pattern_sha256(n)), "64 MiB intact")
        if not instrumented(self.origin.pid):
            self.assertLess(rss_kib(self.origin.pid) - before, 16 * 1024,
                            "origin never held the body")

    def test_echo_streams_back_with_backpressure(self):
        n = 8 << 20
        with self.conn() as c:
            c.send_request("POST", "/echo", headers={"Transfer-Encoding": "chunked"})
            sender = c.send_body_in_thread(pattern_chunks(n, 100000))
            resp = c.read_response_hashed()
            sender.join(10)
            self.assertIsNone(sender.error, "upload failed")
            self.assertEqual(resp.framing, "chunked")
            self.assertEqual((resp.length, resp.sha256), (n, pattern_sha256(n)), "echoed intact")
            resp = c.request("POST", "/echo", body=b"small body")
            self.assertEqual(resp.body, b"small body", "CL upload echoed")
            resp = c.request("POST", "/echo?delay_ms=50", body=b"held during delay")
            self.assertEqual(resp.body, b"held during delay", "body held while delayed")

    def test_sink_chunked_upload(self):
        n = 5 << 20
        with self.conn() as c:
            c.send_request("PUT", "/sink", headers={"Transfer-Encoding": "chunked"})
            c.send_body(pattern_chunks(n, 65536))
            resp = c.read_response()
            self.assertEqual(resp.json(), {"length": n, "sha256": pattern_sha256(n)})
            body = os.urandom(1000)
            resp = c.request("POST", "/sink", body=body)
            self.assertEqual(resp.json()["sha256"], hashlib.sha256(body).hexdigest(), "CL body")

    def test_expect_continue(self):
        with self.conn() as c:
            c.send_request("POST", "/sink", headers={"Expect": "100-continue",
                                                     "Content-Length": "3"})
            head = c.read_head(skip_informational=False)
            self.assertEqual(head.status, 100, "100 Continue before the body")
            c.send(b"abc")
            self.assertEqual(c.read_response().json()["length"], 3)

    def test_status_override_and_framing(self):
        with self.conn() as c:
            resp = c.request("GET", "/x?status=503")
            self.assertEqual((resp.status, resp.reason), (503, "Service Unavailable"))
            self.assertEqual(resp.json()["path"], "/x?status=503", "body still sent")
            for status in (204, 304):
                resp = c.request("GET", "/x?status=%d" % status)
                self.assertEqual(resp.status, status)
                self.assertIsNone(resp.get("Content-Length"), "%d has no length" % status)
                self.assertIsNone(resp.get("Transfer-Encoding"), "%d not chunked" % status)
            resp = c.request("HEAD", "/bytes?n=500")
            self.assertEqual((resp.get("Content-Length"), resp.body), ("500", b""), "HEAD bytes")
            resp = c.request("HEAD", "/bytes?n=500&chunked=1")
            self.assertEqual(resp.get("Transfer-Encoding"), "chunked", "HEAD of a chunked route")
            resp = c.request("HEAD", "/anything")
            self.assertTrue(int(resp.get("Content-Length")) > 0, "HEAD default has GET's length")
            # Had any of these sent a body, this answer would be misparsed.
            resp = c.request("GET", "/after")
            self.assertEqual(resp.json()["path"], "/after", "connection framing intact")
            self.assertEqual(resp.get("X-Origin-Request"), "7", "seven answers on one connection")

    def test_delay(self):
        start = time.monotonic()
        resp = request(self.port, "GET", "/d?delay_ms=300")
        self.assertGreaterEqual(time.monotonic() - start, 0.29, "waited before answering")
        self.assertEqual(resp.status, 200)

    def test_slow(self):
        start = time.monotonic()
        with self.conn() as c:
            c.send_request("GET", "/slow?n=3000&every_ms=30&step=1000")
            resp = c.read_response_hashed()
        self.assertGreaterEqual(time.monotonic() - start, 0.05, "dripped over time")
        self.assertEqual((resp.length, resp.sha256), (3000, pattern_sha256(3000)))

    def test_close_mid(self):
        with self.conn() as c:
            c.send_request("GET", "/close-mid?n=1000&after=100")
            with self.assertRaises(IncompleteResponse) as ctx:
                c.read_response()
            partial = ctx.exception.partial
            self.assertEqual(partial.get("Content-Length"), "1000", "announced length")
            self.assertEqual(partial.body, b"".join(pattern_chunks(100)), "then 100 bytes")

    def test_close_now_and_hang(self):
        with self.conn() as c:
            c.send_request("GET", "/close-now")
            self.assertTrue(c.closed(), "closed without answering")
            self.assertEqual(bytes(c.buf), b"", "nothing sent")
        with self.conn() as c:
            c.send_request("GET", "/hang")
            self.assertFalse(c.closed(0.3), "hang keeps the connection open, silent")

    def test_malformed_request_gets_400_and_close(self):
        for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                    b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
            with self.conn() as c:
                c.send(raw)
                resp = c.read_response()
                self.assertEqual(resp.status, 400, "400 for %r" % raw)
                self.assertTrue(c.closed(), "closed after 400 for %r" % raw)

    def test_health_toggle_per_endpoint(self):
        p1, p2 = split_addr(self.a1)[1], split_addr(self.a2)[1]
        self.assertEqual(request(p1, "GET", "/healthz").body, b"ok")
        try:
            self.origin.set_health(self.a1, 503)
            self.assertEqual(request(p1, "GET", "/healthz").status, 503, "toggled endpoint")
            self.assertEqual(request(p2, "GET", "/healthz").status, 200, "other endpoint")
        finally:
            self.origin.set_health(self.a1, 200)
        self.assertEqual(request(p1, "GET", "/healthz").status, 200, "back up")

    def test_log_file(self):
        mark = self.origin.mark()
        with self.conn(self.b1) as c:
            c.request("GET", "/logged?q=1", headers=[("X-Test", "v")])
            c.request("DELETE", "/second")
        wait_for(lambda: len(self.origin.requests(since=mark)) >= 2, timeout=2,
                 message="log lines written")
        entries = [e for e in self.origin.requests(since=mark) if e["endpoint"] == self.b1]
        self.assertEqual([e["path"] for e in entries], ["/logged?q=1", "/second"])
        first, second = entries
        self.assertEqual((first["cluster"], first["method"], first["version"]),
                         ("beta", "GET", "1.1"))
        self.assertIn(["X-Test", "v"], first["headers"], "headers as [name, value] pairs")
        self.assertEqual(first["conn"], second["conn"], "same connection number")
        self.assertEqual(second["method"], "DELETE")


class OriginProcessTest(unittest.TestCase):
    @unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6_endpoint(self):
        addr = "[::1]:%d" % free_port("::1")
        with Origin({"v6": [addr]}, log=False) as o:
            resp = request(split_addr(addr)[1], "GET", "/", host="::1")
            self.assertEqual(resp.get("X-Origin-Endpoint"), addr)
            self.assertEqual(o.requests(), [], "no log without --log")

    def test_bad_address_fails_to_start(self):
        with self.assertRaises(RuntimeError):
            Origin({"x": ["not-an-address"]}).start()

    def test_sigterm_with_open_connections_exits_zero(self):
        addr = "127.0.0.1:%d" % free_port()
        o = Origin({"c": [addr]}).start()
        c = RawConn("127.0.0.1", split_addr(addr)[1])
        c.send_request("GET", "/hang")
        wait_for(lambda: o.requests(), timeout=2, message="hang request received")
        self.assertEqual(o.stop(), 0, "clean exit with a connection open")
        c.close()
        o.remove_files()


if __name__ == "__main__":
    unittest.main()
