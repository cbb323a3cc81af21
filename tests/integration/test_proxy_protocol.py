"""tests/integration/test_proxy_protocol.py: the PROXY protocol, both ways.

Inbound (`"proxy_protocol": true` on a listener): every connection must
start with a PROXY v1 or v2 header, whose source address becomes the client
address (GeoIP, X-Forwarded-For, access log); v2 LOCAL and v1 UNKNOWN use the
socket peer. A connection without a valid header (none, malformed,
truncated, stalled) is closed without a single response byte, never reaches
an origin, and is counted in
meridian_proxy_protocol_errors_total{listener="NAME"}. A listener without
the option never parses a header: a "PROXY ..." line there is a malformed
request (400).

Outbound (`"send_proxy": "v1"|"v2"` on a cluster): every upstream connection
meridian opens to the cluster's endpoints starts with exactly one PROXY
header carrying the client's address (the socket peer, or the address an
inbound PROXY header gave). The C test origin does not speak PROXY, so
ProxyOrigin (below) reads the header, records it, then serves HTTP/1.1
keep-alive (wsutil.MiniOrigin).

Standalone unittest script; stdlib only; every wait bounded.
"""

import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Meridian, OriginTestCase, RawConn, addr, build_request,  # noqa: E402
                     deep_merge, metric, split_addr, wait_for, write_config)
from routing_helpers import IP, AccessLog, cookie_cluster, db, sign_cookie, write_keys  # noqa: E402
from wsutil import MiniOrigin  # noqa: E402

KEY = ("k1", bytes(range(21, 53)))
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"

BASE = {
    "health": {"interval_ms": 1000, "timeout_ms": 200},
    "timeouts": {"client_header_ms": 1500, "client_idle_ms": 5000,
                 "upstream_connect_ms": 1000, "upstream_response_ms": 5000},
}


# ------------------------------------------------------------ PROXY headers

def proxy_v1(src, dst="127.0.0.1", sport=40000, dport=80, family=None):
    """A v1 line: PROXY TCP4|TCP6 SRC DST SPORT DPORT\\r\\n."""
    family = family or ("TCP6" if ":" in src else "TCP4")
    return ("PROXY %s %s %s %d %d\r\n" % (family, src, dst, sport, dport)).encode("ascii")


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def proxy_v2(src=None, dst=None, sport=40000, dport=80, command="PROXY", tlvs=b"",
             version=2, ver_cmd=None, family=None):
    """A v2 binary header. src None: family UNSPEC, no addresses."""
    if ver_cmd is None:
        ver_cmd = (version << 4) | {"LOCAL": 0x0, "PROXY": 0x1}[command]
    if src is None:
        fam, body = 0x00, b""
    elif ":" in src:
        fam = 0x21
        body = (socket.inet_pton(socket.AF_INET6, src)
                + socket.inet_pton(socket.AF_INET6, dst or "::1")
                + struct.pack("!HH", sport, dport))
    else:
        fam = 0x11
        body = (socket.inet_pton(socket.AF_INET, src)
                + socket.inet_pton(socket.AF_INET, dst or "127.0.0.1")
                + struct.pack("!HH", sport, dport))
    if family is not None:
        fam = family
    body += tlvs
    return V2_SIG + bytes([ver_cmd, fam]) + struct.pack("!H", len(body)) + body


class ProxyHeaderError(ValueError):
    pass


def parse_v1(line):
    """{'version': 1, 'family', 'src', 'dst', 'sport', 'dport'} of a v1 line (CRLF included)."""
    if not line.endswith(b"\r\n") or len(line) > 107:
        raise ProxyHeaderError("v1 line not ended by CRLF within 107 bytes")
    parts = line[:-2].decode("ascii").split(" ")
    if parts[0] != "PROXY" or len(parts) < 2:
        raise ProxyHeaderError("not a v1 line: %r" % line)
    if parts[1] == "UNKNOWN":
        return {"version": 1, "family": "UNKNOWN", "command": "PROXY", "src": None,
                "dst": None, "sport": None, "dport": None}
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("bad v1 line: %r" % line)
    af = socket.AF_INET if parts[1] == "TCP4" else socket.AF_INET6
    for a in parts[2:4]:
        socket.inet_pton(af, a)
    sport, dport = int(parts[4]), int(parts[5])
    if not (0 <= sport <= 65535 and 0 <= dport <= 65535):
        raise ProxyHeaderError("bad v1 port: %r" % line)
    return {"version": 1, "family": parts[1], "command": "PROXY", "src": parts[2],
            "dst": parts[3], "sport": sport, "dport": dport}


def parse_v2(head, body):
    """The fields of a v2 header (16-byte head, then body)."""
    ver_cmd, fam = head[12], head[13]
    if ver_cmd >> 4 != 2 or (ver_cmd & 0xF) not in (0, 1):
        raise ProxyHeaderError("bad v2 version/command 0x%02x" % ver_cmd)
    out = {"version": 2, "command": "LOCAL" if ver_cmd & 0xF == 0 else "PROXY",
           "family": {0x00: "UNSPEC", 0x11: "TCP4", 0x21: "TCP6"}.get(fam, "0x%02x" % fam),
           "src": None, "dst": None, "sport": None, "dport": None, "tlvs": []}
    rest = body
    if fam == 0x11:
        if len(body) < 12:
            raise ProxyHeaderError("v2 TCP4 body too short")
        out.update(src=socket.inet_ntop(socket.AF_INET, body[0:4]),
                   dst=socket.inet_ntop(socket.AF_INET, body[4:8]),
                   sport=struct.unpack("!H", body[8:10])[0],
                   dport=struct.unpack("!H", body[10:12])[0])
        rest = body[12:]
    elif fam == 0x21:
        if len(body) < 36:
            raise ProxyHeaderError("v2 TCP6 body too short")
        out.update(src=socket.inet_ntop(socket.AF_INET6, body[0:16]),
                   dst=socket.inet_ntop(socket.AF_INET6, body[16:32]),
                   sport=struct.unpack("!H", body[32:34])[0],
                   dport=struct.unpack("!H", body[34:36])[0])
        rest = body[36:]
    while len(rest) >= 3:
        kind, n = rest[0], struct.unpack("!H", rest[1:3])[0]
        out["tlvs"].append((kind, rest[3:3 + n].hex()))
        rest = rest[3 + n:]
    return out


class ProxyOrigin(MiniOrigin):
    """An HTTP/1.1 origin that reads a PROXY header (v1 or v2) at the start of
    each connection, if there is one, and records it. Any further PROXY
    header on the same connection is counted (extra_headers) and skipped.
    The JSON echo answer carries the connection's record under "extra"."""

    def __init__(self, name, port=0):
        super().__init__(name, port)
        self._conns = {}

    def conn(self, conn_id):
        with self.lock:
            return self._conns.get(int(conn_id))

    def conns(self):
        with self.lock:
            return dict(self._conns)

    def client_conns(self):
        """Connection records that carried at least one request that is not
        a health check."""
        ids = {r.conn_id for r in self.requests()}
        return {i: c for i, c in self.conns().items() if i in ids}

    @staticmethod
    def _read_header(stream):
        while len(stream.buf) < 16 and stream.fill():
            pass
        buf = bytes(stream.buf)
        if buf.startswith(V2_SIG):
            head = stream.need(16)
            body = stream.need(struct.unpack("!H", head[14:16])[0])
            return parse_v2(head, body)
        if buf.startswith(b"PROXY "):
            return parse_v1(stream.read_until(b"\r\n", limit=107))
        return None

    def on_connect(self, stream, conn_id, peer):
        state = {"conn": conn_id, "peer": list(peer), "proxy": None, "extra_headers": 0,
                 "error": None}
        with self.lock:
            self._conns[conn_id] = state
        try:
            state["proxy"] = self._read_header(stream)
        except (ProxyHeaderError, ValueError, OSError) as e:
            state["error"] = str(e)
            raise ValueError("bad PROXY header")
        return state

    def before_request(self, stream, conn_id, state):
        while len(stream.buf) < 16 and stream.fill():
            pass
        if bytes(stream.buf).startswith(V2_SIG) or bytes(stream.buf).startswith(b"PROXY "):
            state["extra_headers"] += 1
            self._read_header(stream)

    def echo_body(self, req):
        out = super().echo_body(req)
        out["extra"] = {k: v for k, v in req.extra.items()}
        return out


# ------------------------------------------------------------------ helpers

def read_until_eof(conn, timeout):
    """(bytes received, True if EOF/reset came within timeout)."""
    got = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(got), False
        conn.sock.settimeout(left)
        try:
            data = conn.sock.recv(65536)
        except socket.timeout:
            return bytes(got), False
        except (ConnectionResetError, BrokenPipeError):
            return bytes(got), True
        if not data:
            return bytes(got), True
        got += data


def request_bytes(path, headers=None, host="edge.meridian.test"):
    return build_request("GET", path, headers, host=host)


# ================================================================= inbound

class InboundTest(OriginTestCase):
    """Listeners "pp" (proxy_protocol) and "plain"; regions eu-west
    {eu-west-a} for GB and us-east {us-east-a}, the default."""

    ENDPOINTS = {"eu-west-a": 1, "us-east-a": 1}
    TMP_PREFIX = "mr-ppin-"

    def edge(self, overrides=None):
        cfg = deep_merge(BASE, {
            # "plain" first: the harness's start probe (connect, close) goes there.
            "listeners": [{"name": "plain", "address": addr()},
                          {"name": "pp", "address": addr(), "proxy_protocol": True}],
            "geoip": {"database": db("geoip2.mmdb")},
            "regions": [
                {"name": "eu-west", "lat": 53.35, "lon": -6.26, "clusters": [
                    {"name": "eu-west-a", "weight": 100, "endpoints": self.eps["eu-west-a"]}]},
                {"name": "us-east", "lat": 39.04, "lon": -77.49, "clusters": [
                    {"name": "us-east-a", "weight": 100, "endpoints": self.eps["us-east-a"]}]},
            ],
            "routing": {"countries": {"GB": ["eu-west", "us-east"]},
                        "continents": {"EU": ["eu-west", "us-east"]},
                        "proximity": False, "default": ["us-east", "eu-west"]},
        })
        d = tempfile.mkdtemp(dir=self.tmp)
        path, _ = write_config(d, deep_merge(cfg, overrides))
        write_keys(d, [KEY])
        return Meridian(path)

    def pp_port(self, m):
        return split_addr(m.config["listeners"][1]["address"])[1]

    def send(self, m, header, path, headers=None, port=None, pieces=1):
        """header + a GET on a fresh connection (in pieces segments); the Response."""
        data = header + request_bytes(path, headers)
        with RawConn(port=port or self.pp_port(m), timeout=5) as c:
            step = max(1, len(data) // pieces)
            for i in range(0, len(data), step):
                c.send(data[i:i + step])
                if pieces > 1:
                    time.sleep(0.02)  # separate segments, so the header is read in parts
            return c.read_response()

    def assert_served(self, resp, cluster, client, tag):
        self.assertEqual(resp.status, 200, "%s: %r" % (tag, resp))
        self.assertEqual(resp.get("X-Origin-Cluster"), cluster, "%s: routed to %s" % (tag, cluster))
        seen = resp.json()["headers"]
        self.assertEqual(seen.get("x-forwarded-for"), client,
                         "%s: X-Forwarded-For is the PROXY source" % tag)
        self.assertEqual(seen.get("x-forwarded-proto"), "http")

    def assert_closed_silently(self, m, data, tag, half_close=False, port=None, timeout=5.0):
        with RawConn(port=port or self.pp_port(m), timeout=5) as c:
            try:
                c.send(data)
                if half_close:
                    c.shutdown_write()
            except OSError:
                pass  # already closed: fine
            got, eof = read_until_eof(c, timeout)
            self.assertEqual(got, b"", "%s: no response bytes" % tag)
            self.assertTrue(eof, "%s: connection closed within %.0f s" % (tag, timeout))

    # --------------------------------------------------------------- v1 / v2

    def test_v1_header_drives_routing_and_client_address(self):
        with self.edge() as m:
            port = self.pp_port(m)
            hdr = proxy_v1(IP["GB"], "127.0.0.1", 40001, port)
            with RawConn(port=port, timeout=5) as c:
                c.send(hdr + request_bytes("/v1-gb"))
                resp = c.read_response()
                self.assert_served(resp, "eu-west-a", IP["GB"], "v1 GB")
                self.assertEqual(cookie_cluster(resp), "eu-west-a")
                # The header comes once per connection; the next request on
                # it keeps the same client.
                c.send(request_bytes("/v1-gb-2"))
                self.assert_served(c.read_response(), "eu-west-a", IP["GB"], "v1 GB keep-alive")
            self.assert_served(self.send(m, proxy_v1(IP["US"]), "/v1-us"), "us-east-a",
                               IP["US"], "v1 US")
            log = AccessLog(m.config["access_log"])
            for path, client, country, cluster in (("/v1-gb", IP["GB"], "GB", "eu-west-a"),
                                                   ("/v1-us", IP["US"], "US", "us-east-a")):
                e = log.entry(path)
                self.assertEqual((e["client"], e["country"], e["cluster"]),
                                 (client, country, cluster), "access log of %s: %r" % (path, e))

    def test_v2_header_tcp4_tcp6_and_tlvs(self):
        with self.edge() as m:
            self.assert_served(self.send(m, proxy_v2(IP["GB"], "127.0.0.1", 40002, self.pp_port(m)),
                                         "/v2-gb"), "eu-west-a", IP["GB"], "v2 TCP4 GB")
            self.assert_served(self.send(m, proxy_v2(IP["GB6"], "::1", 40003, self.pp_port(m)),
                                         "/v2-gb6"), "eu-west-a", IP["GB6"], "v2 TCP6 GB")
            tlvs = tlv(0x02, b"edge.meridian.test") + tlv(0x05, b"req-1234") + tlv(0x04, b"\0" * 3)
            self.assert_served(self.send(m, proxy_v2(IP["US"], tlvs=tlvs), "/v2-tlv"),
                               "us-east-a", IP["US"], "v2 with TLVs")
            e = AccessLog(m.config["access_log"]).entry("/v2-gb")
            self.assertEqual((e["client"], e["country"], e["cluster"]),
                             (IP["GB"], "GB", "eu-west-a"), e)

    def test_local_and_unknown_use_socket_peer(self):
        with self.edge() as m:
            cases = [
                ("v2 LOCAL", proxy_v2(None, command="LOCAL")),
                ("v2 LOCAL with addresses (ignored)", proxy_v2(IP["GB"], command="LOCAL")),
                ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n"),
                ("v1 UNKNOWN with addresses (ignored)",
                 b"PROXY UNKNOWN 81.2.69.142 127.0.0.1 40000 80\r\n"),
            ]
            for i, (tag, hdr) in enumerate(cases):
                with self.subTest(tag):
                    # The socket peer is loopback: the default route (us-east).
                    self.assert_served(self.send(m, hdr, "/peer-%d" % i), "us-east-a",
                                       "127.0.0.1", tag)
            # The peer is a trusted proxy, so as without a header its
            # X-Forwarded-For is believed.
            resp = self.send(m, proxy_v2(None, command="LOCAL"), "/local-xff",
                             headers=[("X-Forwarded-For", IP["GB"])])
            self.assertEqual(resp.get("X-Origin-Cluster"), "eu-west-a", "LOCAL: trusted peer's XFF")
            self.assertEqual(resp.json()["headers"].get("x-forwarded-for"),
                             "%s, 127.0.0.1" % IP["GB"])

    def test_header_split_across_segments(self):
        # The PROXY protocol spec lets a receiver drop a header that does not
        # arrive in one segment but recommends waiting for the rest; an
        # event-driven reader does that naturally. (HAProxy itself drops.)
        with self.edge() as m:
            self.assert_served(self.send(m, proxy_v1(IP["GB"]), "/v1-split", pieces=4),
                               "eu-west-a", IP["GB"], "v1 header in several segments")
            self.assert_served(self.send(m, proxy_v2(IP["GB"]), "/v2-split", pieces=5),
                               "eu-west-a", IP["GB"], "v2 header in several segments")

    # --------------------------------------------------------------- rejects

    def test_invalid_headers_closed_without_response(self):
        req = request_bytes("/must-not-arrive")
        good_v2 = proxy_v2(IP["GB"])
        rejects = [
            ("no header", req),
            ("malformed v1 address", b"PROXY TCP4 999.1.1.1 127.0.0.1 40000 80\r\n" + req),
            ("v1 family/address mismatch", b"PROXY TCP4 2a02:c7f::1 127.0.0.1 40000 80\r\n" + req),
            ("v1 port out of range", b"PROXY TCP4 81.2.69.142 127.0.0.1 70000 80\r\n" + req),
            ("v1 without CRLF in 107 bytes", b"PROXY TCP4 " + b"1" * 120 + b"\r\n" + req),
            ("v2 version 1", proxy_v2(IP["GB"], ver_cmd=0x11) + req),
            ("v2 unknown command", proxy_v2(IP["GB"], ver_cmd=0x2F) + req),
            ("v2 TCP4 with a 4-byte address block",
             good_v2[:14] + struct.pack("!H", 4) + good_v2[16:20] + req),
        ]
        truncated = [
            ("truncated v1, then close", b"PROXY TCP4 81.2.69.142 127.0"),
            ("truncated v2, then close", good_v2[:20]),
        ]
        with self.edge() as m:
            mark = self.origin.mark()
            before = metric(m, "meridian_proxy_protocol_errors_total", listener="pp")
            for tag, data in rejects:
                with self.subTest(tag):
                    self.assert_closed_silently(m, data, tag)
            wait_for(lambda: metric(m, "meridian_proxy_protocol_errors_total", listener="pp")
                     >= before + len(rejects), timeout=3, raise_on_timeout=False)
            counted = metric(m, "meridian_proxy_protocol_errors_total", listener="pp") - before
            self.assertEqual(counted, len(rejects),
                             "meridian_proxy_protocol_errors_total{listener=\"pp\"} counts rejects")
            for tag, data in truncated:
                with self.subTest(tag):
                    self.assert_closed_silently(m, data, tag, half_close=True)
            after = metric(m, "meridian_proxy_protocol_errors_total", listener="pp") - before
            self.assertLessEqual(after, len(rejects) + len(truncated))
            # A good connection after all that: the only request the origin sees.
            self.assert_served(self.send(m, proxy_v1(IP["GB"]), "/after-rejects"), "eu-west-a",
                               IP["GB"], "good header after the rejects")
            paths = [e["path"] for e in self.origin.requests(since=mark)]
            self.assertEqual(paths, ["/after-rejects"],
                             "rejected connections never reach an origin")
            self.assertEqual(metric(m, "meridian_proxy_protocol_errors_total", listener="plain"), 0)

    def test_tcp_probe_is_not_a_header_error(self):
        # A fronting balancer's TCP check connects and closes without a byte.
        with self.edge() as m:
            before = metric(m, "meridian_proxy_protocol_errors_total", listener="pp")
            for _ in range(3):
                socket.create_connection(("127.0.0.1", self.pp_port(m)), timeout=5).close()
            self.assert_closed_silently(m, request_bytes("/no-header"), "no header")
            wait_for(lambda: metric(m, "meridian_proxy_protocol_errors_total", listener="pp")
                     >= before + 1, timeout=3)
            self.assert_served(self.send(m, proxy_v1(IP["GB"]), "/after-probes"), "eu-west-a",
                               IP["GB"], "good header after the probes")
            self.assertEqual(metric(m, "meridian_proxy_protocol_errors_total", listener="pp"),
                             before + 1, "only the request without a header is counted")

    def test_stalled_partial_header_closed_without_response(self):
        with self.edge() as m:
            with RawConn(port=self.pp_port(m), timeout=5) as c:
                t0 = time.monotonic()
                c.send(b"PROXY TCP4 81.2.69.142 ")
                got, eof = read_until_eof(c, 6.0)
                self.assertEqual(got, b"", "no 408 or any other byte on a PROXY listener")
                self.assertTrue(eof, "a stalled header is closed (client_header_ms 1500), "
                                "waited %.1f s" % (time.monotonic() - t0))

    # ------------------------------------------------- who may send a header

    def test_header_only_from_proxy_protocol_from(self):
        # "pp" believes 10.0.0.0/8 only: the test client (127.0.0.1) is refused
        # before a byte is read, however plausible its header; "pp-ok" lists
        # loopback and still works.
        listeners = {"listeners": [
            {"name": "plain", "address": addr()},
            {"name": "pp", "address": addr(), "proxy_protocol": True,
             "proxy_protocol_from": ["10.0.0.0/8"]},
            {"name": "pp-ok", "address": addr(), "proxy_protocol": True,
             "proxy_protocol_from": ["127.0.0.1/32", "::1"]}]}
        with self.edge(listeners) as m:
            mark = self.origin.mark()
            forged = proxy_v1("127.0.0.1", "127.0.0.1", 40010, self.pp_port(m))
            for i in range(3):
                self.assert_closed_silently(m, forged + request_bytes("/forged-%d" % i),
                                            "header from a peer not in proxy_protocol_from")
            wait_for(lambda: metric(m, "meridian_proxy_protocol_refused_total", listener="pp")
                     >= 3, timeout=3, raise_on_timeout=False)
            self.assertEqual(metric(m, "meridian_proxy_protocol_refused_total", listener="pp"), 3,
                             "meridian_proxy_protocol_refused_total{listener=\"pp\"} counts them")
            self.assertEqual(metric(m, "meridian_proxy_protocol_errors_total", listener="pp"), 0,
                             "a refused peer is not a header error")
            ok_port = split_addr(m.config["listeners"][2]["address"])[1]
            self.assert_served(self.send(m, proxy_v1(IP["GB"]), "/allowed", port=ok_port),
                               "eu-west-a", IP["GB"], "header from a listed peer")
            self.assertEqual(metric(m, "meridian_proxy_protocol_refused_total",
                                    listener="pp-ok"), 0)
            self.assertEqual([e["path"] for e in self.origin.requests(since=mark)], ["/allowed"],
                             "refused connections never reach an origin")

    def test_proxy_protocol_from_defaults_to_trusted_proxies(self):
        # Without proxy_protocol_from, trusted_proxies decides: loopback is
        # trusted by default in these tests (the other tests rely on it) and
        # refused once trusted_proxies no longer lists it.
        with self.edge({"trusted_proxies": ["10.0.0.0/8"]}) as m:
            self.assert_closed_silently(m, proxy_v1(IP["GB"]) + request_bytes("/untrusted"),
                                        "header from a peer not in trusted_proxies")
            wait_for(lambda: metric(m, "meridian_proxy_protocol_refused_total", listener="pp")
                     >= 1, timeout=3, raise_on_timeout=False)
            self.assertEqual(metric(m, "meridian_proxy_protocol_refused_total", listener="pp"), 1)

    def test_plain_listener_answers_proxy_line_with_400(self):
        with self.edge() as m:
            mark = self.origin.mark()
            port = m.port
            resp = self.send(m, proxy_v1(IP["GB"], "127.0.0.1", 40009, port), "/plain-pp",
                             port=port)
            self.assertEqual(resp.status, 400, "a PROXY line is a malformed request there")
            self.assertIsNone(resp.get("X-Origin-Cluster"))
            # The plain listener still serves plain requests.
            with RawConn(port=port, timeout=5) as c:
                r = c.request("GET", "/plain-ok")
            self.assertEqual((r.status, r.get("X-Origin-Cluster")), (200, "us-east-a"))
            self.assertEqual([e["path"] for e in self.origin.requests(since=mark)], ["/plain-ok"])
            self.assertEqual(metric(m, "meridian_proxy_protocol_errors_total", listener="plain"), 0,
                             "the plain listener counts no PROXY errors")


# ================================================================ outbound

class SendProxyTest(unittest.TestCase):
    """Region r1 with clusters pv2 (send_proxy v2) and pv1 (send_proxy v1),
    each a ProxyOrigin; listeners "pp" (proxy_protocol) and "plain".
    Requests pick their cluster with a signed cookie."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mr-ppout-")
        cls.origins = {"pv2": ProxyOrigin("pv2").start(), "pv1": ProxyOrigin("pv1").start()}

    @classmethod
    def tearDownClass(cls):
        for o in cls.origins.values():
            o.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def edge(self):
        cfg = deep_merge(BASE, {
            # "plain" first: the harness's start probe (connect, close) goes there.
            "listeners": [{"name": "plain", "address": addr()},
                          {"name": "pp", "address": addr(), "proxy_protocol": True}],
            "regions": [{"name": "r1", "lat": 0.0, "lon": 0.0, "clusters": [
                {"name": "pv2", "weight": 100, "endpoints": [self.origins["pv2"].addr],
                 "send_proxy": "v2"},
                {"name": "pv1", "weight": 100, "endpoints": [self.origins["pv1"].addr],
                 "send_proxy": "v1"},
            ]}],
            "routing": {"default": ["r1"]},
        })
        d = tempfile.mkdtemp(dir=self.tmp)
        path, _ = write_config(d, cfg)
        write_keys(d, [KEY])
        return Meridian(path)

    def pp_port(self, m):
        return split_addr(m.config["listeners"][1]["address"])[1]

    def cookie(self, cluster):
        return ("Cookie", "MRD=" + sign_cookie(KEY[0], KEY[1], cluster))

    def conn_record(self, cluster, resp):
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.get("X-Origin-Cluster"), cluster)
        rec = self.origins[cluster].conn(resp.get("X-Origin-Conn"))
        self.assertIsNotNone(rec)
        return rec

    def assert_header(self, rec, version, src, tag):
        p = rec["proxy"]
        self.assertIsNotNone(p, "%s: the upstream connection starts with a PROXY header (%r)"
                             % (tag, rec))
        self.assertEqual((p["version"], p["command"]), (version, "PROXY"), "%s: %r" % (tag, p))
        self.assertEqual(p["family"], "TCP6" if ":" in src else "TCP4", "%s: %r" % (tag, p))
        self.assertEqual(p["src"], src, "%s: the source is the client's address" % tag)
        self.assertEqual(rec["extra_headers"], 0, "%s: exactly one header per connection" % tag)

    def test_v2_header_once_per_upstream_connection(self):
        with self.edge() as m, RawConn(port=m.port, timeout=5) as c:
            r1 = c.request("GET", "/v2-a", headers=[self.cookie("pv2")])
            r2 = c.request("GET", "/v2-b", headers=[self.cookie("pv2")])
            rec = self.conn_record("pv2", r1)
            self.assertEqual(r2.get("X-Origin-Conn"), r1.get("X-Origin-Conn"),
                             "the second request reuses the kept-alive upstream connection")
            self.assertEqual((r1.get("X-Origin-Request"), r2.get("X-Origin-Request")), ("1", "2"))
            self.assert_header(rec, 2, "127.0.0.1", "v2")
            self.assertEqual(r2.json()["extra"]["extra_headers"], 0,
                             "no second header before the second request")
            self.assertIsNotNone(rec["proxy"]["dst"])

    def test_v1_header_once_per_upstream_connection(self):
        with self.edge() as m, RawConn(port=m.port, timeout=5) as c:
            r1 = c.request("GET", "/v1-a", headers=[self.cookie("pv1")])
            r2 = c.request("GET", "/v1-b", headers=[self.cookie("pv1")])
            rec = self.conn_record("pv1", r1)
            self.assertEqual(r2.get("X-Origin-Conn"), r1.get("X-Origin-Conn"))
            self.assert_header(rec, 1, "127.0.0.1", "v1")
            self.assertEqual(self.origins["pv1"].conn(r2.get("X-Origin-Conn"))["extra_headers"], 0)

    def test_inbound_proxy_source_sent_upstream(self):
        with self.edge() as m:
            for inbound, cluster, version, src in (
                    (proxy_v1(IP["GB"]), "pv2", 2, IP["GB"]),
                    (proxy_v2(IP["US"]), "pv1", 1, IP["US"]),
                    (proxy_v2(IP["GB"]), "pv2", 2, IP["GB"])):
                with self.subTest(cluster=cluster, src=src), \
                        RawConn(port=self.pp_port(m), timeout=5) as c:
                    c.send(inbound + request_bytes("/chain-%s" % cluster,
                                                   headers=[self.cookie(cluster)]))
                    resp = c.read_response()
                    rec = self.conn_record(cluster, resp)
                    self.assert_header(rec, version, src, "chained %s" % cluster)
                    self.assertEqual(resp.json()["headers"].get("x-forwarded-for"), src)

    def test_health_checks_open_with_a_local_header(self):
        # An origin that requires the header must not see meridian's own
        # checks as bad connections: they speak for no client.
        with self.edge() as m:
            for cluster, version in (("pv2", 2), ("pv1", 1)):
                origin = self.origins[cluster]
                mark = len(origin.requests(health_checks=True))

                def checked():
                    return [r for r in origin.requests(since=mark, health_checks=True)
                            if r.is_health_check()]
                wait_for(lambda: checked(), timeout=10,
                         message="a health check reaches %s" % cluster)
                rec = origin.conn(checked()[0].conn_id)
                with self.subTest(cluster=cluster):
                    self.assertIsNotNone(rec["proxy"], rec)
                    self.assertEqual(rec["proxy"]["version"], version, rec)
                    if version == 2:
                        self.assertEqual(rec["proxy"]["command"], "LOCAL", rec)
                    else:
                        self.assertEqual(rec["proxy"]["family"], "UNKNOWN", rec)
            status = m.admin("GET", "/api/v1/status").json()
            health = {e["address"]: e["health"] for r in status["regions"]
                      for c in r["clusters"] for e in c["endpoints"]}
            self.assertEqual(set(health.values()), {"up"}, health)

    def test_each_upstream_connection_carries_its_own_client(self):
        # Origins attribute a connection's requests to its header's source:
        # a request must never ride a connection opened for another client.
        with self.edge() as m:
            sources = [IP["GB"], IP["US"], IP["GB"], IP["DE"], IP["US"]]
            for i, src in enumerate(sources):
                with RawConn(port=self.pp_port(m), timeout=5) as c:
                    c.send(proxy_v2(src) + request_bytes("/who-%d" % i,
                                                         headers=[self.cookie("pv2")]))
                    resp = c.read_response()
                rec = self.conn_record("pv2", resp)
                self.assertEqual(rec["proxy"] and rec["proxy"]["src"], src,
                                 "request %d from %s arrived on a connection whose PROXY source "
                                 "is %r" % (i, src, rec["proxy"] and rec["proxy"]["src"]))
            # And concurrently, on the plain listener (client 127.0.0.1).
            errors = []

            def one(i):
                try:
                    with RawConn(port=m.port, timeout=5) as c:
                        for j in range(3):
                            r = c.request("GET", "/par-%d-%d" % (i, j),
                                          headers=[self.cookie("pv1")])
                            if r.status != 200:
                                errors.append(r.status)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(e)
            threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            self.assertEqual(errors, [])
            for cluster, o in self.origins.items():
                for cid, rec in o.client_conns().items():
                    with self.subTest(cluster=cluster, conn=cid):
                        self.assertIsNotNone(rec["proxy"], "every upstream connection starts "
                                             "with a header: %r" % rec)
                        self.assertEqual(rec["extra_headers"], 0, rec)


if __name__ == "__main__":
    unittest.main()
