"""tests/integration/test_proxy_framing.py: the bytes meridian forwards are
what it parsed, never what it was sent.

One test per hole, with raw sockets on both sides: a scripted origin
(RawOrigin) records every byte it receives and parses requests strictly, so a
test can assert exactly how many requests arrived and how they were framed.

- Connection cannot remove Content-Length, Transfer-Encoding or Host (request
  smuggling), nor an origin's Content-Length (an unframed keep-alive reply).
- Chunked bodies are decoded and re-encoded canonically in both directions;
  malformed ones get 400 (request) or a cut, counted response.
- absolute-form targets go in origin-form with their authority as Host and
  are routed on it; "*" only with OPTIONS; control bytes in the target and a
  malformed Host get 400; head checks do not depend on how reads split.
- Interim 1xx lose their hop-by-hop headers and never reach HTTP/1.0 clients.
"""

import os
import re
import select
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (IncompleteResponse, Meridian, RawConn, free_port, wait_for,  # noqa: E402
                     write_config)

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


class RawOrigin:
    """An origin on a loopback port that records raw bytes per connection and
    parses requests by their framing (Content-Length or chunked, decoded
    leniently so a smuggled request shows up as a request of its own).
    reply(req) returns the bytes to answer with (default: 200 "ok")."""

    def __init__(self):
        self.lock = threading.Lock()
        self.raw = []        # bytes per connection, in accept order
        self.reqs = []       # dicts: line, headers [(name, value)], body
        self.reply = lambda req: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.sock.close()
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            c.settimeout(10)
            self.conns.append(c)
            with self.lock:
                self.raw.append(b"")
                idx = len(self.raw) - 1
            threading.Thread(target=self._serve, args=(c, idx), daemon=True).start()

    def _serve(self, c, idx):
        buf = bytearray()

        def fill():
            data = c.recv(65536)
            if not data:
                raise EOFError
            with self.lock:
                self.raw[idx] += data
            buf.extend(data)

        def line():
            while b"\n" not in buf:
                fill()
            i = buf.index(b"\n")
            out = bytes(buf[:i + 1])
            del buf[:i + 1]
            return out

        def take(n):
            while len(buf) < n:
                fill()
            out = bytes(buf[:n])
            del buf[:n]
            return out

        try:
            while True:
                first = line()
                headers = []
                while True:
                    h = line()
                    if h in (b"\r\n", b"\n"):
                        break
                    name, _, value = h.decode("latin-1").partition(":")
                    headers.append((name.strip(), value.strip()))
                names = {n.lower(): v for n, v in headers}
                body = b""
                if "chunked" in names.get("transfer-encoding", "").lower():
                    while True:
                        size = int(line().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while line() not in (b"\r\n", b"\n"):
                                pass
                            break
                        body += take(size)
                        line()
                elif "content-length" in names:
                    body = take(int(names["content-length"]))
                req = {"line": first.decode("latin-1").rstrip("\r\n"), "headers": headers,
                       "body": body}
                target = req["line"].split(" ")[1] if " " in req["line"] else ""
                if target != "/healthz":
                    with self.lock:
                        self.reqs.append(req)
                c.sendall(self.reply(req))
        except (EOFError, OSError, ValueError, IndexError):
            pass
        finally:
            c.close()

    def requests(self):
        with self.lock:
            return list(self.reqs)

    def all_bytes(self):
        with self.lock:
            return b"".join(self.raw)


def header(req, name):
    return [v for n, v in req["headers"] if n.lower() == name.lower()]


def metric(m, name):
    resp = m.admin("GET", "/metrics")
    total = 0.0
    for ln in resp.text.splitlines():
        mt = _SAMPLE.match(ln)
        if mt and mt.group(1) == name:
            total += float(mt.group(3))
    return total


def read_until_eof(conn):
    """Everything the client gets until meridian closes."""
    while conn._fill():
        pass
    return bytes(conn.buf)


SMUGGLED = (b"GET /smuggled HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n"
            b"Content-Length: 0\r\n\r\n")


class FramingTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mr-framing-")
        self.origin = RawOrigin()
        self.addCleanup(self.origin.close)
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def edge(self, overrides=None):
        cfg = {
            "workers": 1,
            "regions": [{"name": "local", "lat": 0.0, "lon": 0.0, "clusters": [
                {"name": "local-a", "weight": 100, "endpoints": [self.origin.addr],
                 "public_url": "https://a.meridian.test"}]}],
        }
        cfg.update(overrides or {})
        path, self.cfg = write_config(self.tmp, cfg)
        m = Meridian(path).start()
        self.addCleanup(m.stop)
        return m

    def conn(self, m):
        c = RawConn(port=m.port)
        self.addCleanup(c.sock.close)
        return c

    def wait_requests(self, n):
        wait_for(lambda: len(self.origin.requests()) >= n, timeout=5,
                 message="origin got %d request(s)" % n)
        return self.origin.requests()

    # ------------------------------------------------ 1. framing is meridian's

    def test_connection_content_length_does_not_smuggle(self):
        m = self.edge()
        c = self.conn(m)
        c.send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
               b"Connection: content-length\r\n\r\n" % len(SMUGGLED) + SMUGGLED)
        resp = c.read_response()
        self.assertEqual(resp.status, 200)
        # A second request on the same connection: the origin still sees one
        # POST whose body is the would-be request, framed by its length.
        c.send_request("GET", "/b")
        self.assertEqual(c.read_response().status, 200)
        reqs = self.wait_requests(2)
        self.assertEqual([r["line"] for r in reqs], ["POST /a HTTP/1.1", "GET /b HTTP/1.1"])
        self.assertEqual(header(reqs[0], "Content-Length"), [str(len(SMUGGLED))])
        self.assertEqual(reqs[0]["body"], SMUGGLED)

    def test_connection_transfer_encoding_does_not_smuggle(self):
        m = self.edge()
        c = self.conn(m)
        c.send(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: transfer-encoding\r\n\r\n"
               b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n")
        self.assertEqual(c.read_response().status, 200)
        c.send_request("GET", "/b")
        self.assertEqual(c.read_response().status, 200)
        reqs = self.wait_requests(2)
        self.assertEqual([r["line"] for r in reqs], ["POST /a HTTP/1.1", "GET /b HTTP/1.1"])
        self.assertEqual(header(reqs[0], "Transfer-Encoding"), ["chunked"])
        self.assertEqual(reqs[0]["body"], SMUGGLED)

    def test_connection_host_keeps_host(self):
        m = self.edge()
        c = self.conn(m)
        c.send(b"GET /h HTTP/1.1\r\nHost: app.example\r\nConnection: host\r\n\r\n")
        self.assertEqual(c.read_response().status, 200)
        self.assertEqual(header(self.wait_requests(1)[0], "Host"), ["app.example"])

    def test_origin_connection_content_length_stays_framed(self):
        self.origin.reply = lambda req: (b"HTTP/1.1 200 OK\r\nConnection: content-length\r\n"
                                         b"Content-Length: 5\r\n\r\nhello")
        m = self.edge()
        c = self.conn(m)
        c.send_request("GET", "/one")
        resp = c.read_response()
        self.assertEqual(resp.get("Content-Length"), "5")
        self.assertEqual(resp.body, b"hello")
        c.send_request("GET", "/two")
        resp = c.read_response()
        self.assertEqual((resp.status, resp.body), (200, b"hello"))

    # ------------------------------------------------ 2. chunked, re-encoded

    def test_chunked_request_forwarded_canonical(self):
        m = self.edge()
        c = self.conn(m)
        c.send(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;name=\"v;1\"\r\nhello\r\n0006\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
        self.assertEqual(c.read_response().status, 200)
        self.assertEqual(self.wait_requests(1)[0]["body"], b"hello world")
        raw = self.origin.all_bytes()
        self.assertTrue(raw.endswith(b"\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), raw)
        self.assertNotIn(b"name=", raw)
        self.assertNotIn(b"X-Trailer", raw)

    def assert_bad_chunked_request(self, first, rest, marker):
        """Sends a chunked body whose first part holds a malformed line
        (marker); the rest follows once meridian acted on the first."""
        m = self.edge()
        c = self.conn(m)
        c.send(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + first)
        wait_for(lambda: marker in self.origin.all_bytes() or
                 select.select([c.sock], [], [], 0)[0], timeout=5,
                 message="meridian answered or forwarded")
        if not select.select([c.sock], [], [], 0)[0]:
            c.send(rest)
        resp = c.read_response()
        self.assertEqual(resp.status, 400)
        self.assertEqual(resp.get("Connection"), "close")
        self.assertEqual(read_until_eof(c), b"")
        # Nothing of the malformed line reached the origin.
        self.assertNotIn(marker, self.origin.all_bytes())

    def test_chunked_request_bare_lf_in_extension_refused(self):
        self.assert_bad_chunked_request(b"5;a\nb\r\nhello\r\n", b"0\r\n\r\n", b";a\nb")

    def test_chunked_request_bad_data_end_refused(self):
        self.assert_bad_chunked_request(b"5\r\nhelloXY", b"0\r\n\r\n", b"helloXY")

    def test_chunked_request_cr_without_lf_refused(self):
        self.assert_bad_chunked_request(b"5\rXhello", b"\r\n0\r\n\r\n", b"5\rX")

    def test_chunked_response_forwarded_canonical(self):
        self.origin.reply = lambda req: (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                         b"3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n")
        m = self.edge()
        c = self.conn(m)
        c.send_request("GET", "/c")
        resp = c.read_head()
        self.assertEqual(resp.get("Transfer-Encoding"), "chunked")
        while not bytes(c.buf).endswith(b"0\r\n\r\n") and c._fill():
            pass
        self.assertEqual(bytes(c.buf), b"3\r\nabc\r\n0\r\n\r\n")
        c.buf.clear()
        c.send_request("GET", "/again")
        self.assertEqual(c.read_response().body, b"abc")

    def test_bad_chunked_response_cut_and_counted(self):
        self.origin.reply = lambda req: (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                         b"3\r\nabc\r\n2\nxy\r\n0\r\n\r\n")
        m = self.edge()
        before = metric(m, "meridian_bad_response_bodies_total")
        c = self.conn(m)
        c.send_request("GET", "/bad")
        resp = c.read_head()
        self.assertEqual(resp.status, 200)
        got = []
        with self.assertRaises(IncompleteResponse):
            c.read_body(resp, sink=got.append)
        self.assertTrue(c.eof)
        self.assertEqual(b"".join(got), b"abc")
        wait_for(lambda: metric(m, "meridian_bad_response_bodies_total") == before + 1,
                 timeout=5, message="bad response body counted")

    # ------------------------------------------------ 3. targets and Host

    def test_absolute_form_forwarded_in_origin_form(self):
        m = self.edge()
        c = self.conn(m)
        c.send(b"GET http://a.example:8080/x?y HTTP/1.1\r\nHost: other.example\r\n\r\n")
        self.assertEqual(c.read_response().status, 200)
        req = self.wait_requests(1)[0]
        self.assertEqual(req["line"], "GET /x?y HTTP/1.1")
        self.assertEqual(header(req, "Host"), ["a.example:8080"])

    def test_absolute_form_authority_picks_hosts_mode(self):
        m = self.edge({"hosts": {"r.example": {"mode": "redirect"}}})
        c = self.conn(m)
        c.send(b"GET http://r.example/p?q HTTP/1.1\r\nHost: other.example\r\n\r\n")
        resp = c.read_response()
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.get("Location"), "https://a.meridian.test/p?q")
        # and the received Host naming the redirect host does not count
        c.send(b"GET http://other.example/p HTTP/1.1\r\nHost: r.example\r\n\r\n")
        self.assertEqual(c.read_response().status, 200)
        self.assertEqual(self.wait_requests(1)[0]["line"], "GET /p HTTP/1.1")

    def assert_refused(self, m, data, status=400):
        c = self.conn(m)
        c.send(data)
        resp = c.read_response()
        self.assertEqual(resp.status, status, data)
        self.assertEqual(self.origin.requests(), [])
        return resp

    def test_asterisk_only_with_options(self):
        m = self.edge()
        self.assert_refused(m, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n")
        c = self.conn(m)
        c.send(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(c.read_response().status, 200)
        self.assertEqual(self.wait_requests(1)[0]["line"], "OPTIONS * HTTP/1.1")

    def test_control_bytes_in_target_refused(self):
        m = self.edge()
        for target in (b"/a\tb", b"/a\x0cb", b"/a\x01b", b"/a\x7fb"):
            self.assert_refused(m, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")

    def test_host_with_path_refused_before_redirect(self):
        port = free_port()
        m = self.edge({"listeners": [{"name": "http", "address": "127.0.0.1:%d" % port,
                                      "redirect_https": True}]})
        resp = self.assert_refused(m, b"GET /y HTTP/1.1\r\nHost: evil.example/x\r\n\r\n")
        self.assertIsNone(resp.get("Location"))
        c = self.conn(m)
        c.send(b"GET /y HTTP/1.1\r\nHost: good.example\r\n\r\n")
        self.assertEqual(c.read_response().get("Location"), "https://good.example/y")
        # an absolute-form target's authority is the host redirected to
        c = self.conn(m)
        c.send(b"GET http://abs.example:8080?q HTTP/1.1\r\nHost: good.example\r\n\r\n")
        self.assertEqual(c.read_response().get("Location"), "https://abs.example/?q")

    def test_hostile_heads_byte_by_byte(self):
        """Each byte is its own write, so meridian sees the head split at
        every point (the pause only paces the writes; nothing is timed)."""
        m = self.edge()
        cases = [
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n b\r\n\r\n", 400),    # obs-fold
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400),           # bare CR
            (b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", 400),               # TAB in target
            (b"GET / HTTP/1.1\r\nHost: evil.example/x\r\n\r\n", 400),
            (b"\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n", 200),             # leading CRLF
        ]
        for data, status in cases:
            c = self.conn(m)
            try:
                for i in range(len(data)):
                    c.send(data[i:i + 1])
                    time.sleep(0.002)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before the end: the answer is waiting
            try:
                got = c.read_response().status
            except IncompleteResponse:
                got = None  # reset after the 400, before it was read: still no 200
            self.assertIn(got, (status,) if status == 200 else (status, None), data)
        self.assertEqual([r["line"] for r in self.origin.requests()], ["GET /ok HTTP/1.1"])

    def test_interim_responses(self):
        self.origin.reply = lambda req: (
            b"HTTP/1.1 100 Continue\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: t=5\r\n"
            b"X-Kept: 1\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        m = self.edge()
        c = self.conn(m)
        c.send_request("GET", "/i")
        resp = c.read_response()
        self.assertEqual(resp.body, b"ok")
        self.assertEqual(len(resp.informational), 1)
        interim = resp.informational[0]
        self.assertEqual(interim.status, 100)
        self.assertEqual(interim.get("X-Kept"), "1")
        for name in ("Connection", "X-Hop", "Keep-Alive"):
            self.assertFalse(interim.has(name), name)
        # An HTTP/1.0 client never gets an interim response.
        c10 = self.conn(m)
        c10.send(b"GET /i HTTP/1.0\r\n\r\n")
        data = read_until_eof(c10)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data)
        self.assertNotIn(b"100 Continue", data)


if __name__ == "__main__":
    unittest.main()
