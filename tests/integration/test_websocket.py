"""tests/integration/test_websocket.py: WebSocket (Upgrade) tunnels through
meridian.

A request with `Connection: Upgrade` and `Upgrade: websocket` is picked like
any request (cookie or GeoIP) and forwarded with those two headers; after the
origin's 101 the 101 head reaches the client (with Set-Cookie when the
decision was new) and bytes are tunnelled both ways unchanged until either
side closes. Checked here, against two WebSocket echo origins (wsutil.WsOrigin,
one per cluster):

- the handshake: 101 with Upgrade/Connection and the origin's
  Sec-WebSocket-Accept intact, a Set-Cookie for the new session; what the
  origin saw (Upgrade, Connection, the key, X-Forwarded-For/-Proto);
- messages echoed unchanged: text, binary, frame-length boundaries,
  fragments with a ping between them, several MiB both ways at once;
- the cookie keeps later handshakes on the cluster;
- timeouts.tunnel_idle_ms closes a silent tunnel (both sides), traffic in one
  direction only keeps it; the HTTP timeouts do not apply to a tunnel;
- drains: a soft drain (with or without a deadline) never cuts an open
  tunnel while new handshakes go elsewhere; a hard drain closes the
  cluster's tunnels at its deadline (at once without one), not the others;
- the origin closing first; one access-log line (status 101) per tunnel,
  written when it ends;
- a non-101 answer keeps the connection plain HTTP; `Upgrade: h2c` (and an
  Upgrade not named by Connection) never reaches the origin.

Standalone unittest script; stdlib only; every wait bounded.
"""

import os
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Meridian, RawConn, deep_merge, wait_for, write_config  # noqa: E402
from routing_helpers import (AccessLog, cookie_cluster, cookie_fields, set_cookie,  # noqa: E402
                             set_cookies, sign_cookie, write_keys)
from wsutil import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PONG, OP_TEXT, WsClient,  # noqa: E402
                    WsOrigin, parse_close)

KEY = ("k1", bytes(range(11, 43)))
CLUSTERS = ("ws-a", "ws-b")

BASE = {
    "health": {"interval_ms": 1000, "timeout_ms": 200},
    "timeouts": {"client_header_ms": 3000, "client_idle_ms": 10000,
                 "upstream_connect_ms": 1000, "upstream_response_ms": 5000,
                 "shutdown_grace_ms": 2000},
}


class Edge(Meridian):
    """A Meridian that closes the test's WebSocket clients before it stops
    (an open tunnel would hold a graceful stop for shutdown_grace_ms)."""

    def __init__(self, path):
        super().__init__(path)
        self.clients = []

    def __exit__(self, *exc):
        for ws in self.clients:
            ws.shutdown()
        return super().__exit__(*exc)


class WebSocketTest(unittest.TestCase):
    """Region r1 with clusters ws-a and ws-b (weight 100 each), each served by
    its own WsOrigin; a fresh meridian per test."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mr-ws-")
        cls.origins = {}
        for name in CLUSTERS:
            cls.origins[name] = WsOrigin(name).start()

    @classmethod
    def tearDownClass(cls):
        for o in cls.origins.values():
            o.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ------------------------------------------------------------ helpers

    def edge(self, overrides=None):
        """A Meridian (not started: use it in a with block)."""
        clusters = [{"name": n, "weight": 100, "endpoints": [self.origins[n].addr]}
                    for n in CLUSTERS]
        cfg = deep_merge(BASE, {"regions": [{"name": "r1", "lat": 0.0, "lon": 0.0,
                                             "clusters": clusters}],
                                "routing": {"default": ["r1"]}})
        d = tempfile.mkdtemp(dir=self.tmp)
        path, _ = write_config(d, deep_merge(cfg, overrides))
        write_keys(d, [KEY])
        return Edge(path)

    def cookie(self, cluster):
        return sign_cookie(KEY[0], KEY[1], cluster)

    def open_ws(self, m, path, cookie=None, headers=None, expect=101):
        """A WsClient through m that sent its handshake; asserts a valid 101
        unless expect is None. Closed at the end of the test."""
        hdrs = list(headers or [])
        if cookie is not None:
            hdrs.append(("Cookie", "MRD=" + cookie))
        ws = WsClient(m.port, timeout=5)
        m.clients.append(ws)
        resp = ws.handshake(path, hdrs)
        if expect is not None:
            self.assertEqual(resp.status, expect, "%s: handshake answer %r" % (path, resp))
            if expect == 101:
                self.assertTrue(ws.accepted, "%s: a valid 101 (Upgrade, Connection, "
                                "Sec-WebSocket-Accept): %r" % (path, resp))
        return ws, resp

    def drain(self, m, cluster, body):
        resp = m.admin("POST", "/api/v1/clusters/%s/drain" % cluster, body)
        self.assertEqual(resp.status, 200, "drain %s %r: %r" % (cluster, body, resp.body))
        return resp

    def tunnel_ended(self, cluster, path, timeout=5.0):
        """Waits until the origin of cluster saw its tunnel for path end."""
        origin = self.origins[cluster]
        return wait_for(lambda: (lambda t: t if t is not None and not t.open else None)(
            origin.tunnel_for(path)), timeout=timeout,
            message="origin %s: tunnel %s ended on its side" % (cluster, path))

    def keep_talking(self, ws, seconds, every=0.2, tag="talk"):
        """Echoes a message every `every` seconds for `seconds`; asserts each."""
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            try:
                ws.echo("%s-%d" % (tag, i))
            except (EOFError, OSError) as e:
                self.fail("%s: tunnel cut after %d echoes: %r" % (tag, i, e))
            i += 1
            time.sleep(every)
        return i

    # ---------------------------------------------------------- handshake

    def test_handshake_answer_and_what_the_origin_sees(self):
        marks = {n: o.mark() for n, o in self.origins.items()}
        with self.edge() as m:
            ws, resp = self.open_ws(m, "/chat?room=1", headers=[
                ("Sec-WebSocket-Protocol", "chat.v1, echo"), ("X-Forwarded-For", "192.0.2.7"),
                ("Origin", "http://app.meridian.test")])
            self.assertEqual((resp.get("Upgrade") or "").lower(), "websocket")
            self.assertIn("upgrade", [t.strip().lower() for t in resp.get("Connection").split(",")])
            self.assertEqual(resp.get("Sec-WebSocket-Protocol"), "chat.v1",
                             "the origin's other 101 headers reach the client")
            served = resp.get("X-Origin-Cluster")
            self.assertIn(served, CLUSTERS)
            value, attrs = set_cookie(resp) or (None, None)
            self.assertIsNotNone(value, "a new session's 101 carries Set-Cookie: %r" % resp)
            self.assertEqual(cookie_fields(value)["cluster"], served,
                             "the cookie names the cluster")
            self.assertIn("Path=/", attrs)

            origin = self.origins[served]
            ups = wait_for(lambda: origin.upgrades(since=marks[served]), timeout=3,
                           message="origin %s saw the upgrade request" % served)
            self.assertEqual(len(ups), 1, ups)
            up = ups[0]
            self.assertEqual((up.method, up.target), ("GET", "/chat?room=1"))
            self.assertEqual(up.tokens("Upgrade"), ["websocket"], up.headers)
            self.assertIn("upgrade", up.tokens("Connection"), up.headers)
            self.assertEqual(up.get("Sec-WebSocket-Key"), ws.key, "the key is forwarded unchanged")
            self.assertEqual(up.get("Sec-WebSocket-Version"), "13")
            self.assertEqual(up.get("Sec-WebSocket-Protocol"), "chat.v1, echo")
            self.assertEqual(up.get("Origin"), "http://app.meridian.test")
            self.assertEqual(up.get("X-Forwarded-For"), "192.0.2.7, 127.0.0.1",
                             "trusted loopback peer: list kept, peer appended")
            self.assertEqual(up.get("X-Forwarded-Proto"), "http")
            other = [n for n in CLUSTERS if n != served][0]
            self.assertEqual(self.origins[other].upgrades(since=marks[other]), [],
                             "the other cluster saw nothing")

            ws.echo("hello")
            code, _ = ws.close(1000, "done")
            self.assertEqual(code, 1000, "the closing handshake passes through")
            self.assertTrue(ws.conn.eof, "connection closed after the closing handshake")
            self.assertEqual(self.tunnel_ended(served, "/chat").end, "close")

    def test_handshake_with_connection_token_list(self):
        # Firefox sends "Connection: keep-alive, Upgrade".
        with self.edge() as m:
            ws, resp = self.open_ws(m, "/ff", headers=[("Connection", "keep-alive, Upgrade")])
            ws.echo("token list")

    # ----------------------------------------------------------- messages

    def test_messages_echoed_unchanged(self):
        with self.edge() as m:
            ws, _ = self.open_ws(m, "/echo-msgs", cookie=self.cookie("ws-a"))
            for payload in ("hello", "", "h\u00e9llo w\u00f6rld \u2713", b"\x00\xff\x10",
                            b"", os.urandom(125), os.urandom(126), os.urandom(65535),
                            os.urandom(65536), "x" * 70000):
                ws.echo(payload)
            # Fragments with a ping between them: the ping's pong comes first,
            # then the reassembled message (bytes tunnelled unchanged).
            ws.send_frame(OP_TEXT, b"frag-", fin=False)
            ws.ping(b"between")
            ws.send_frame(OP_CONT, b"ment", fin=False)
            ws.send_frame(OP_CONT, b"ed")
            self.assertEqual(ws.recv_message(), (OP_PONG, b"between"))
            self.assertEqual(ws.recv_message(), (OP_TEXT, b"frag-mented"))

            # Several MiB both ways at once: a thread sends, we read (late at
            # first, so buffers fill and back-pressure has to hold).
            msgs = [(OP_BINARY, os.urandom(1536 * 1024)), (OP_TEXT, b"t" * 100),
                    (OP_BINARY, os.urandom(3 << 20))] + \
                   [(OP_BINARY, os.urandom(1 << 20)) for _ in range(6)]
            t = ws.send_in_thread(msgs)
            wait_for(lambda: not t.is_alive(), timeout=0.5, raise_on_timeout=False)
            for i, (op, data) in enumerate(msgs):
                got_op, got = ws.recv_message()
                self.assertEqual(got_op, op, "message %d opcode" % i)
                self.assertEqual(len(got), len(data), "message %d length" % i)
                self.assertTrue(got == data, "message %d content" % i)
            t.join(10)
            self.assertFalse(t.is_alive(), "sender finished")
            self.assertIsNone(t.error)
            ws.echo("after the bulk")
            self.assertEqual(ws.close()[0], 1000)

    # ------------------------------------------------------------- cookie

    def test_cookie_keeps_handshakes_on_cluster(self):
        with self.edge() as m:
            ws, resp = self.open_ws(m, "/s0")
            first = cookie_cluster(resp)
            self.assertIn(first, CLUSTERS)
            self.assertEqual(resp.get("X-Origin-Cluster"), first)
            value = set_cookie(resp)[0]
            ws.close()
            origin = self.origins[first]
            for i in range(3):
                mark = origin.mark()
                ws, resp = self.open_ws(m, "/s%d" % (i + 1), cookie=value)
                self.assertEqual(resp.get("X-Origin-Cluster"), first,
                                 "handshake %d with the cookie stays on %s" % (i + 1, first))
                self.assertEqual(set_cookies(resp), [], "no new cookie for a sticky session")
                ups = wait_for(lambda: origin.upgrades(since=mark), timeout=3)
                self.assertEqual(ups[0].get("Cookie"), "MRD=" + value,
                                 "the cookie reaches the origin unchanged")
                ws.echo("sticky %d" % i)
                ws.close()
            # A cookie of the other cluster is just as sticky.
            other = [n for n in CLUSTERS if n != first][0]
            ws, resp = self.open_ws(m, "/other", cookie=self.cookie(other))
            self.assertEqual(resp.get("X-Origin-Cluster"), other)
            self.assertEqual(set_cookies(resp), [])
            ws.echo("other")

    # ------------------------------------------------------------ timeouts

    def test_idle_tunnel_closed(self):
        with self.edge({"timeouts": {"tunnel_idle_ms": 500}}) as m:
            ws, _ = self.open_ws(m, "/idle", cookie=self.cookie("ws-a"))
            ws.echo("once")
            waited = ws.eof_within(5.0)
            self.assertIsNotNone(waited, "a tunnel silent for tunnel_idle_ms (500) is closed")
            self.assertGreaterEqual(waited, 0.35, "not before tunnel_idle_ms: %.3f s" % waited)
            self.assertEqual(bytes(ws.conn.buf), b"", "closed without sending anything")
            self.tunnel_ended("ws-a", "/idle")
            e = AccessLog(m.config["access_log"]).entry("/idle")
            self.assertEqual(e["status"], 101, "the tunnel's access-log line: %r" % e)
            self.assertEqual(e["cluster"], "ws-a")

    def test_busy_tunnel_outlives_idle_timeout(self):
        with self.edge({"timeouts": {"tunnel_idle_ms": 500}}) as m:
            ws, _ = self.open_ws(m, "/busy", cookie=self.cookie("ws-a"))
            t0 = time.monotonic()
            self.keep_talking(ws, 1.2, every=0.2, tag="both-ways")
            # Client -> origin only (unsolicited pongs, which the origin
            # ignores): bytes in one direction keep the tunnel too.
            end = time.monotonic() + 1.2
            while time.monotonic() < end:
                ws.send_frame(OP_PONG, b"heartbeat")
                time.sleep(0.2)
            ws.echo("still here")
            self.assertGreater(time.monotonic() - t0, 2.0, "lived 4x tunnel_idle_ms")
            self.assertTrue(self.origins["ws-a"].tunnel_for("/busy").open)
            self.assertIsNotNone(ws.eof_within(5.0), "then silence closes it")

    def test_http_timeouts_do_not_apply_to_tunnels(self):
        # client_idle_ms and upstream_response_ms are for HTTP exchanges; a
        # tunnel has only tunnel_idle_ms.
        with self.edge({"timeouts": {"client_idle_ms": 300, "upstream_response_ms": 400,
                                     "tunnel_idle_ms": 10000}}) as m:
            ws, _ = self.open_ws(m, "/long", cookie=self.cookie("ws-b"))
            ws.echo("before")
            self.assertIsNone(ws.eof_within(1.2), "a silent tunnel outlives client_idle_ms "
                              "and upstream_response_ms")
            ws.echo("after")
            self.assertEqual(ws.close()[0], 1000)

    # -------------------------------------------------------------- drains

    def test_soft_drain_keeps_open_tunnel(self):
        with self.edge() as m:
            ws, _ = self.open_ws(m, "/soft", cookie=self.cookie("ws-a"))
            ws.echo("before")
            res = m.ctl("drain", "ws-a")
            self.assertEqual(res.returncode, 0, "meridianctl drain ws-a: %s%s"
                             % (res.stdout, res.stderr))
            ws.echo("right after the drain")
            ws2, resp = self.open_ws(m, "/soft-new")
            self.assertEqual(resp.get("X-Origin-Cluster"), "ws-b",
                             "a new handshake goes to the cluster taking new sessions")
            self.assertEqual(cookie_cluster(resp), "ws-b")
            ws2.echo("new")
            ws3, resp = self.open_ws(m, "/soft-sticky", cookie=self.cookie("ws-a"))
            self.assertEqual(resp.get("X-Origin-Cluster"), "ws-a", "soft drain keeps sessions")
            ws3.close()
            self.keep_talking(ws, 1.0, every=0.25, tag="soft")
            self.assertTrue(self.origins["ws-a"].tunnel_for("/soft").open)
            self.assertEqual(ws.close()[0], 1000)

    def test_soft_drain_deadline_never_cuts_tunnel(self):
        with self.edge() as m:
            ws, _ = self.open_ws(m, "/soft-deadline", cookie=self.cookie("ws-a"))
            self.drain(m, "ws-a", {"mode": "soft", "deadline_s": 1})
            self.keep_talking(ws, 2.2, every=0.25, tag="past-deadline")
            # Past the deadline ws-a keeps no sessions: a new handshake with
            # its cookie moves, while the open tunnel stays.
            resp = wait_for(lambda: (lambda r: r if r.get("X-Origin-Cluster") == "ws-b" else None)(
                self.open_ws(m, "/soft-moved", cookie=self.cookie("ws-a"))[1]), timeout=3,
                interval=0.2, message="past the soft deadline, ws-a's cookie holders move to ws-b")
            self.assertEqual(cookie_cluster(resp), "ws-b", "with a new cookie")
            ws.echo("the old tunnel still works")
            self.assertTrue(self.origins["ws-a"].tunnel_for("/soft-deadline").open)

    def test_hard_drain_closes_tunnel_at_deadline(self):
        with self.edge() as m:
            ws, _ = self.open_ws(m, "/hard", cookie=self.cookie("ws-a"))
            other, _ = self.open_ws(m, "/hard-other", cookie=self.cookie("ws-b"))
            ws.echo("before")
            t0 = time.monotonic()
            self.drain(m, "ws-a", {"mode": "hard", "deadline_s": 1})
            ws.echo("right after the drain")
            self.assertLess(time.monotonic() - t0, 0.9, "test setup: echoed before the deadline")
            _, resp = self.open_ws(m, "/hard-new", cookie=self.cookie("ws-a"))
            self.assertEqual(resp.get("X-Origin-Cluster"), "ws-b",
                             "a hard drain moves new handshakes at once")
            self.assertEqual(cookie_cluster(resp), "ws-b")
            waited = ws.eof_within(5.0)
            self.assertIsNotNone(waited, "the tunnel is closed at the hard drain's deadline")
            elapsed = time.monotonic() - t0
            self.assertLess(elapsed, 5.0, "closed %.2f s after the drain" % elapsed)
            self.tunnel_ended("ws-a", "/hard")
            other.echo("a tunnel to another cluster stays")
            self.assertEqual(other.close()[0], 1000)

    def test_hard_drain_without_deadline_closes_at_once(self):
        with self.edge() as m:
            ws, _ = self.open_ws(m, "/hard-now", cookie=self.cookie("ws-b"))
            other, _ = self.open_ws(m, "/hard-now-other", cookie=self.cookie("ws-a"))
            ws.echo("before")
            self.drain(m, "ws-b", {"mode": "hard"})
            self.assertIsNotNone(ws.eof_within(3.0), "a hard drain without deadline closes "
                                 "the cluster's tunnels at once")
            self.tunnel_ended("ws-b", "/hard-now")
            other.echo("ws-a's tunnel stays")

    # -------------------------------------------------- the end of a tunnel

    def test_origin_closes_first_and_one_log_line(self):
        with self.edge() as m:
            log = AccessLog(m.config["access_log"])
            ws, _ = self.open_ws(m, "/bye", cookie=self.cookie("ws-b"))
            ws.echo("hi")
            written = wait_for(lambda: [e for e in log.entries() if e.get("path") == "/bye"],
                               timeout=0.5, raise_on_timeout=False)
            self.assertFalse(written, "no access-log line while the tunnel is open: %r" % written)
            ws.send_text("close-me")
            op, payload = ws.recv_message()
            self.assertEqual((op, parse_close(payload)), (OP_CLOSE, (1000, "bye")),
                             "the origin's close frame reaches the client")
            ws.send_frame(OP_CLOSE, payload[:2])
            self.assertIsNotNone(ws.eof_within(3.0), "closed once the origin closed")
            e = log.entry("/bye")
            self.assertEqual((e["status"], e["method"], e["cluster"]), (101, "GET", "ws-b"), e)
            self.assertEqual(e["decision"], "sticky")

    # ------------------------------------------------- not a tunnel after all

    def test_non_101_answer_keeps_plain_http(self):
        with self.edge() as m:
            for status in (200, 404):
                with self.subTest(status=status):
                    origin = self.origins["ws-a"]
                    mark = origin.mark()
                    ws, resp = self.open_ws(m, "/refused?status=%d" % status,
                                            cookie=self.cookie("ws-a"), expect=status)
                    self.assertFalse(ws.accepted)
                    self.assertEqual(resp.json()["path"], "/refused?status=%d" % status,
                                     "the origin's answer and body reach the client")
                    seen = origin.requests(since=mark)
                    self.assertEqual(len(seen), 1, seen)
                    self.assertTrue(seen[0].is_websocket_upgrade(), "forwarded as an upgrade")
                    # The connection is still HTTP: meridian parses and
                    # forwards the next request (sets X-Forwarded-*), rather
                    # than tunnelling its bytes.
                    r2 = ws.conn.request("GET", "/after-%d" % status,
                                         headers=[("Cookie", "MRD=" + self.cookie("ws-a")),
                                                  ("X-Forwarded-For", "198.51.100.1")])
                    self.assertEqual(r2.status, 200)
                    h = r2.json()["headers"]
                    self.assertEqual(h.get("x-forwarded-for"), "198.51.100.1, 127.0.0.1", h)
                    self.assertEqual(h.get("x-forwarded-proto"), "http", h)
                    self.assertIsNone(origin.tunnel_for("/refused"), "no tunnel at the origin")

    def test_h2c_and_bare_upgrade_not_forwarded(self):
        with self.edge() as m, RawConn(port=m.port, timeout=5) as c:
            origin = self.origins["ws-a"]
            mark = origin.mark()
            cookie = ("Cookie", "MRD=" + self.cookie("ws-a"))
            resp = c.request("GET", "/h2c", headers=[
                ("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"), cookie])
            self.assertEqual(resp.status, 200, "h2c is not tunnelled: a plain answer")
            seen = resp.json()["headers"]
            for name in ("upgrade", "http2-settings"):
                self.assertNotIn(name, seen, "%s reached the origin: %r" % (name, seen))
            self.assertNotIn("upgrade", seen.get("connection", "").lower())
            # Upgrade: websocket without Connection: Upgrade is a hop-by-hop
            # header like any other: removed, the request stays plain.
            resp = c.request("GET", "/bare-upgrade", headers=[
                ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"), cookie])
            self.assertEqual(resp.status, 200)
            self.assertNotIn("upgrade", resp.json()["headers"])
            resp = c.request("GET", "/after-h2c", headers=[cookie])
            self.assertEqual((resp.status, resp.json()["path"]), (200, "/after-h2c"),
                             "the connection is still plain HTTP")
            seen = origin.requests(since=mark)
            self.assertEqual([r.target for r in seen], ["/h2c", "/bare-upgrade", "/after-h2c"])
            self.assertFalse(any(r.get("Upgrade") for r in seen), [r.headers for r in seen])
            self.assertIsNone(origin.tunnel_for("/h2c"))


if __name__ == "__main__":
    unittest.main()
