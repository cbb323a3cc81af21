"""tests/integration/test_proxy_bodies.py: request and response bodies through meridian.

Uploads and downloads framed by Content-Length and by chunked encoding, an
echo round trip, the framing the origin and the client actually see, and
64 MiB each way with the edge's memory staying flat (it streams, it never
holds a body whole).
"""

import hashlib
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Meridian, Origin, RawConn, deep_merge, free_port, instrumented,  # noqa: E402
                     pattern_chunks, pattern_sha256, region, wait_for, write_config)

BASE = {
    # The harness default health.timeout_ms 200 > interval_ms 100 is refused.
    "health": {"interval_ms": 1000, "timeout_ms": 200},
    "timeouts": {"client_header_ms": 2000, "client_idle_ms": 10000,
                 "upstream_connect_ms": 300, "upstream_response_ms": 8000},
}

BIG = 64 << 20
RSS_LIMIT_KIB = 32 * 1024


class BodiesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mr-bodies-")
        cls.ep = "127.0.0.1:%d" % free_port()
        cls.origin = Origin({"main": [cls.ep]}).start()
        cfg = deep_merge(BASE, {"regions": [region("r1", {"main": [cls.ep]})],
                                "routing": {"default": ["r1"]}})
        path, _ = write_config(cls.tmp, cfg)
        cls.m = Meridian(path).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.m.stop()
        report = cls.m.sanitizer_report()
        cls.origin.stop()
        cls.origin.remove_files()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        assert report is None, "sanitizer report:\n%s" % report
        assert code == 0, "meridian exit code %r" % code

    def conn(self, timeout=10):
        return RawConn(port=self.m.port, timeout=timeout)

    def last_logged(self, path_prefix, mark):
        """The origin's log entry for the request whose path starts with path_prefix."""
        def find():
            for e in self.origin.requests(since=mark):
                if e["path"].startswith(path_prefix):
                    return e
            return None
        return wait_for(find, timeout=5, message="origin logged %s" % path_prefix)

    # ---------------------------------------------------------------- uploads

    def test_upload_content_length(self):
        body = os.urandom(1 << 20)
        mark = self.origin.mark()
        with self.conn() as c:
            resp = c.request("POST", "/sink/cl", body=body)
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.json(), {"length": len(body),
                                            "sha256": hashlib.sha256(body).hexdigest()},
                             "origin received the body intact")
            resp = c.request("GET", "/after")
            self.assertEqual(resp.json()["path"], "/after", "connection usable after the body")
        entry = self.last_logged("/sink/cl", mark)
        names = {n.lower(): v for n, v in entry["headers"]}
        self.assertEqual(names.get("content-length"), str(len(body)), "forwarded with its length")
        self.assertNotIn("transfer-encoding", names)

    def test_upload_chunked_forwarded_chunked(self):
        n = 3 * 1000 * 1000 + 7
        mark = self.origin.mark()
        with self.conn() as c:
            c.send_request("PUT", "/sink/chunked", headers={"Transfer-Encoding": "chunked"})
            c.send_body(pattern_chunks(n, 100000))
            resp = c.read_response()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.json(), {"length": n, "sha256": pattern_sha256(n)},
                             "chunked upload intact")
            resp = c.request("POST", "/sink/small", body=b"abc")
            self.assertEqual(resp.json()["length"], 3, "next request on the same connection")
        entry = self.last_logged("/sink/chunked", mark)
        names = {n.lower(): v for n, v in entry["headers"]}
        self.assertEqual(names.get("transfer-encoding", "").lower(), "chunked",
                         "chunked request body forwarded as chunked: %r" % entry["headers"])
        self.assertNotIn("content-length", names)

    def test_empty_bodies(self):
        with self.conn() as c:
            resp = c.request("POST", "/sink/empty", body=b"")
            self.assertEqual(resp.json()["length"], 0)
            c.send_request("POST", "/sink/empty-chunked", headers={"Transfer-Encoding": "chunked"})
            c.send(b"0\r\n\r\n")
            self.assertEqual(c.read_response().json()["length"], 0)
            resp = c.request("GET", "/bytes?n=0")
            self.assertEqual((resp.status, resp.get("Content-Length"), resp.body), (200, "0", b""))
            resp = c.request("GET", "/after-empty")
            self.assertEqual(resp.json()["path"], "/after-empty")

    def test_expect_continue(self):
        with self.conn() as c:
            c.send_request("POST", "/sink/expect", headers={"Expect": "100-continue",
                                                            "Content-Length": "3"})
            head = c.read_head(skip_informational=False)
            self.assertEqual(head.status, 100, "100 Continue relayed before the body is sent")
            c.send(b"abc")
            resp = c.read_response()
            self.assertEqual(resp.json(), {"length": 3, "sha256": hashlib.sha256(b"abc")
                                           .hexdigest()})

    def test_chunked_upload_with_trailer(self):
        with self.conn() as c:
            c.send(b"POST /sink/trailer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                   b"\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n")
            resp = c.read_response()
            self.assertEqual(resp.json()["length"], 5)
            resp = c.request("GET", "/after-trailer")
            self.assertEqual(resp.json()["path"], "/after-trailer", "framing intact after trailer")

    # -------------------------------------------------------------- downloads

    def test_download_content_length(self):
        n = 3 * 1000 * 1000 + 1
        with self.conn() as c:
            c.send_request("GET", "/bytes?n=%d" % n)
            resp = c.read_response_hashed()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.framing, "length", "Content-Length framing kept")
            self.assertEqual(resp.get("Content-Length"), str(n))
            self.assertEqual((resp.length, resp.sha256), (n, pattern_sha256(n)), "bytes intact")
            resp = c.request("GET", "/after")
            self.assertEqual(resp.json()["path"], "/after")

    def test_download_chunked_reaches_client_chunked(self):
        n = 2 * 1000 * 1000 + 3
        with self.conn() as c:
            c.send_request("GET", "/bytes?n=%d&chunked=1&chunk=10000" % n)
            resp = c.read_response_hashed()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.framing, "chunked", "chunked response stays chunked")
            self.assertIsNone(resp.get("Content-Length"))
            self.assertEqual((resp.length, resp.sha256), (n, pattern_sha256(n)), "bytes intact")
            resp = c.request("GET", "/after")
            self.assertEqual(resp.json()["path"], "/after", "framing intact after chunked")

    # ------------------------------------------------------------------- echo

    def test_echo_round_trip(self):
        n = 4 << 20
        with self.conn() as c:
            c.send_request("POST", "/echo", headers={"Transfer-Encoding": "chunked"})
            sender = c.send_body_in_thread(pattern_chunks(n, 65536))
            resp = c.read_response_hashed()
            sender.join(10)
            self.assertFalse(sender.is_alive(), "upload finished")
            self.assertIsNone(sender.error, "upload failed: %r" % sender.error)
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.framing, "chunked")
            self.assertEqual((resp.length, resp.sha256), (n, pattern_sha256(n)), "echoed intact")
            resp = c.request("POST", "/echo", body=b"small body")
            self.assertEqual(resp.body, b"small body", "Content-Length upload echoed")

    # --------------------------------------------------------- 64 MiB, flat RSS

    def rss_sampler(self):
        """Returns (sample(), peak()): sample() records the edge's RSS."""
        peak = [self.m.rss_kib()]

        def sample():
            peak[0] = max(peak[0], self.m.rss_kib())
        return sample, lambda: peak[0]

    def check_rss(self, before, peak, what):
        if instrumented(self.m.pid):
            return  # ASan's allocator makes RSS meaningless
        self.assertLess(peak - before, RSS_LIMIT_KIB,
                        "%s: edge RSS grew %d KiB (from %d to %d KiB): not streamed"
                        % (what, peak - before, before, peak))

    def test_64mib_upload_streams(self):
        with self.conn() as c:
            c.request("GET", "/warm")  # pools and buffers exist before the baseline
            before = self.m.rss_kib()
            sample, peak = self.rss_sampler()

            def body():
                for i, piece in enumerate(pattern_chunks(BIG, 1 << 20)):
                    yield piece
                    sample()
            c.send_request("POST", "/sink/big", headers={"Content-Length": str(BIG)})
            sent = c.send_body(body(), chunked=False)
            resp = c.read_response()
            sample()
            self.assertEqual(sent, BIG)
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.json(), {"length": BIG, "sha256": pattern_sha256(BIG)},
                             "64 MiB upload intact")
        self.check_rss(before, peak(), "64 MiB upload")

    def test_64mib_download_streams(self):
        with self.conn() as c:
            c.request("GET", "/warm")
            before = self.m.rss_kib()
            sample, peak = self.rss_sampler()
            h = hashlib.sha256()
            seen = [0]

            def sink(piece):
                h.update(piece)
                seen[0] += len(piece)
                if seen[0] >= (1 << 20):
                    seen[0] = 0
                    sample()
            c.send_request("GET", "/bytes?n=%d" % BIG)
            resp = c.read_response(sink=sink)
            sample()
            self.assertEqual(resp.status, 200)
            self.assertEqual((resp.length, h.hexdigest()), (BIG, pattern_sha256(BIG)),
                             "64 MiB download intact")
        self.check_rss(before, peak(), "64 MiB download")


if __name__ == "__main__":
    unittest.main()
