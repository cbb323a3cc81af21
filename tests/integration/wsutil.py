"""tests/integration/wsutil.py: WebSocket (RFC 6455) helpers for the
integration tests, and the small threaded HTTP/1.1 origin they build on.
Not a test itself (tests/run.sh runs only test_*.py). Stdlib only.

- MiniOrigin: a threaded HTTP/1.1 origin on 127.0.0.1 (keep-alive,
  Content-Length bodies). It serves GET /healthz (200) so meridian's health
  checks see it up, answers any request with ?status=N with that status, and
  everything else with a JSON echo of the head. Every request head it
  receives is recorded (requests()); meridian's health checks are left out
  unless asked for. Subclasses hook on_connect() (test_proxy_protocol reads
  a PROXY header there) and handle().
- WsOrigin(MiniOrigin): answers a valid WebSocket handshake with 101 and the
  right Sec-WebSocket-Accept, then echoes text and binary messages (one frame
  per message, fragments reassembled), answers ping with pong and close with
  close, and closes. The text message "close-me" makes it close first.
  Tunnels are recorded (tunnels()): when they opened, how they ended.
- WsClient: a client on one TCP connection (harness.RawConn): the handshake,
  masked frames out, frames in, the closing handshake, waiting for EOF.

Every socket has a timeout; servers are stopped by closing their sockets,
never by killing anything.
"""

import base64
import hashlib
import itertools
import json
import os
import socket
import socketserver
import struct
import threading
import time
from urllib.parse import parse_qs, urlsplit

from harness import NET_TIMEOUT, Headers, RawConn

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
CONTROL_OPS = (OP_CLOSE, OP_PING, OP_PONG)

SERVER_SOCKET_TIMEOUT = 30.0  # an origin thread never waits longer than this on a read


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode()


def new_key():
    """A fresh Sec-WebSocket-Key: base64 of 16 random bytes."""
    return base64.b64encode(os.urandom(16)).decode()


def mask_bytes(data, key):
    """data XOR the 4-byte key repeated (masking and unmasking are the same)."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def encode_frame(opcode, payload=b"", mask_key=None, fin=True, rsv=0):
    """One frame. mask_key: 4 bytes (a client frame) or None (a server frame)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    mbit = 0x80 if mask_key is not None else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask_key is not None:
        return head + mask_key + mask_bytes(payload, mask_key)
    return head + payload


def close_payload(code=1000, reason=""):
    return struct.pack("!H", code) + reason.encode("utf-8")


def parse_close(payload):
    """(code or None, reason) of a close frame's payload."""
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


class Frame:
    __slots__ = ("fin", "rsv", "opcode", "masked", "payload")

    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode = fin, rsv, opcode
        self.masked, self.payload = masked, payload

    def __repr__(self):
        return "<Frame op=%d fin=%s masked=%s len=%d>" % (self.opcode, self.fin, self.masked,
                                                          len(self.payload))


def read_frame(need):
    """Reads one frame through need(n) -> exactly n bytes (raises EOFError at EOF)."""
    b0, b1 = need(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", need(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", need(8))[0]
    masked = bool(b1 & 0x80)
    key = need(4) if masked else None
    payload = need(n) if n else b""
    if masked:
        payload = mask_bytes(payload, key)
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload)


# ------------------------------------------------------------- the origin

class Stream:
    """A socket with a read buffer; every read bounded by the socket timeout."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False

    def fill(self):
        """Reads more; False at EOF (or reset)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def need(self, n):
        while len(self.buf) < n:
            if not self.fill():
                raise EOFError("EOF with %d of %d bytes" % (len(self.buf), n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until(self, sep, limit=65536):
        """Bytes up to and including sep; None at EOF before any byte; EOFError if cut."""
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (sep, limit))
            if not self.fill():
                if not self.buf:
                    return None
                raise EOFError("EOF inside a head: %r" % bytes(self.buf[:200]))

    def send(self, data):
        self.sock.sendall(data)


class Request(Headers):
    """A request head as an origin received it."""

    def __init__(self, method, target, version, headers, conn_id, index, peer):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers  # [(name, value)] in arrival order
        self.conn_id = conn_id
        self.index = index      # 1 for the first request on its connection
        self.peer = peer
        self.time = time.monotonic()
        parts = urlsplit(target)
        self.path = parts.path
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.body = b""
        self.extra = {}         # what a subclass wants to note (e.g. the PROXY header)

    def tokens(self, name):
        """The comma-separated tokens of every name header, lower case."""
        return [t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()]

    def header_dict(self):
        out = {}
        for k, v in self.headers:
            k = k.lower()
            out[k] = out[k] + ", " + v if k in out else v
        return out

    def is_health_check(self):
        return self.get("User-Agent") == "meridian-health"

    def is_websocket_upgrade(self):
        return ("upgrade" in self.tokens("Connection")
                and "websocket" in self.tokens("Upgrade")
                and self.get("Sec-WebSocket-Key") is not None)

    def __repr__(self):
        return "<Request %s %s conn=%d #%d>" % (self.method, self.target, self.conn_id, self.index)


REASONS = {101: "Switching Protocols", 200: "OK", 204: "No Content", 302: "Found",
           400: "Bad Request", 404: "Not Found", 426: "Upgrade Required",
           500: "Internal Server Error", 503: "Service Unavailable"}


class MiniOrigin:
    """A threaded HTTP/1.1 origin on 127.0.0.1.

        with WsOrigin("ws-a") as o:
            o.addr  -> "127.0.0.1:PORT"
            o.requests() -> [Request, ...]
    """

    def __init__(self, name, port=0):
        self.name = name
        self.port = port
        self.server = None
        self.thread = None
        self.lock = threading.Lock()
        self._requests = []
        self._conn_ids = itertools.count(1)
        self._socks = set()
        self.health_status = 200

    # -- lifecycle

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        origin = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                origin._serve(self.request, self.client_address)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        with self.lock:
            socks = list(self._socks)
        for s in socks:  # unblocks handler threads waiting on reads
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=5)
        self.server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- records

    def requests(self, since=0, health_checks=False):
        with self.lock:
            out = list(self._requests)
        if not health_checks:
            out = [r for r in out if not r.is_health_check()]
        return out[since:]

    def mark(self):
        return len(self.requests())

    def _record(self, req):
        with self.lock:
            self._requests.append(req)

    # -- serving

    def _serve(self, sock, peer):
        sock.settimeout(SERVER_SOCKET_TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn_id = next(self._conn_ids)
        with self.lock:
            self._socks.add(sock)
        stream = Stream(sock)
        try:
            state = self.on_connect(stream, conn_id, peer)
            index = 0
            while True:
                self.before_request(stream, conn_id, state)
                head = stream.read_until(b"\r\n\r\n")
                if head is None:
                    return
                index += 1
                req = self._parse_head(head, conn_id, index, peer)
                if req is None:
                    stream.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                b"Connection: close\r\n\r\n")
                    return
                req.extra.update(state or {})
                cl = req.get("Content-Length")
                if cl is not None:
                    req.body = stream.need(int(cl))
                self._record(req)
                keep = self.handle(stream, req)
                if not keep or req.version == "HTTP/1.0" or "close" in req.tokens("Connection"):
                    return
        except (EOFError, OSError, ValueError):
            return
        finally:
            with self.lock:
                self._socks.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    @staticmethod
    def _parse_head(head, conn_id, index, peer):
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return None
        headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                return None
            headers.append((name, value.strip(" \t")))
        return Request(parts[0], parts[1], parts[2], headers, conn_id, index, peer)

    def on_connect(self, stream, conn_id, peer):
        """Called once per connection before its first request; returns a dict
        copied into every request's .extra."""
        return {}

    def before_request(self, stream, conn_id, state):
        """Called before each request head is read."""

    def respond(self, stream, req, status, body=b"", headers=(), ctype="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        head = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
                "X-Origin-Cluster: %s" % self.name,
                "X-Origin-Conn: %d" % req.conn_id,
                "X-Origin-Request: %d" % req.index,
                "Content-Type: %s" % ctype,
                "Content-Length: %d" % (0 if req.method == "HEAD" else len(body))]
        head += ["%s: %s" % h for h in headers]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        stream.send(data + (b"" if req.method == "HEAD" else body))

    def echo_body(self, req):
        return {"origin": self.name, "method": req.method, "path": req.target,
                "conn": req.conn_id, "request": req.index, "headers": req.header_dict(),
                "extra": req.extra}

    def handle(self, stream, req):
        """Answers req; returns True to keep the connection for another request."""
        if req.path == "/healthz":
            self.respond(stream, req, self.health_status, b"ok", ctype="text/plain")
            return True
        status = int(req.query.get("status", "200") or 200)
        self.respond(stream, req, status, self.echo_body(req))
        return True


class Tunnel:
    """What a WsOrigin saw of one upgraded connection."""

    def __init__(self, req):
        self.req = req
        self.opened = time.monotonic()
        self.ended = None      # monotonic time the origin's side ended
        self.end = None        # "eof", "close", "closed-first", "error: ..."
        self.messages = 0

    @property
    def open(self):
        return self.ended is None

    def __repr__(self):
        return "<Tunnel %s conn=%d end=%s msgs=%d>" % (self.req.path, self.req.conn_id, self.end,
                                                       self.messages)


class WsOrigin(MiniOrigin):
    """A WebSocket echo origin (see the module docstring)."""

    def __init__(self, name, port=0):
        super().__init__(name, port)
        self._tunnels = []

    def tunnels(self):
        with self.lock:
            return list(self._tunnels)

    def tunnel_for(self, path):
        found = [t for t in self.tunnels() if t.req.path == path]
        return found[-1] if found else None

    def upgrades(self, since=0):
        """The recorded requests that asked for a WebSocket upgrade."""
        return [r for r in self.requests(since) if r.is_websocket_upgrade()]

    def handle(self, stream, req):
        if req.path == "/healthz" or "status" in req.query or not req.is_websocket_upgrade():
            return super().handle(stream, req)
        if req.get("Sec-WebSocket-Version") != "13":
            self.respond(stream, req, 426, b"", headers=[("Sec-WebSocket-Version", "13")])
            return True
        head = ["HTTP/1.1 101 Switching Protocols",
                "Upgrade: websocket",
                "Connection: Upgrade",
                "Sec-WebSocket-Accept: %s" % accept_key(req.get("Sec-WebSocket-Key")),
                "X-Origin-Cluster: %s" % self.name,
                "X-Origin-Conn: %d" % req.conn_id]
        protos = req.tokens("Sec-WebSocket-Protocol")
        if protos:
            head.append("Sec-WebSocket-Protocol: %s" % protos[0])
        tunnel = Tunnel(req)
        with self.lock:
            self._tunnels.append(tunnel)
        try:
            stream.send(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            tunnel.end = self._echo(stream, tunnel)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            tunnel.end = "eof"
        except (OSError, ValueError) as e:
            tunnel.end = "error: %s" % e
        finally:
            tunnel.ended = time.monotonic()
        return False

    def _echo(self, stream, tunnel):
        parts, first_op = [], None
        while True:
            f = read_frame(stream.need)
            if not f.masked:
                stream.send(encode_frame(OP_CLOSE, close_payload(1002, "unmasked")))
                return "error: unmasked client frame"
            if f.opcode == OP_PING:
                stream.send(encode_frame(OP_PONG, f.payload))
            elif f.opcode == OP_PONG:
                continue
            elif f.opcode == OP_CLOSE:
                stream.send(encode_frame(OP_CLOSE, f.payload[:2]))
                stream.sock.shutdown(socket.SHUT_WR)
                return "close"
            elif f.opcode in (OP_TEXT, OP_BINARY, OP_CONT):
                if f.opcode != OP_CONT:
                    first_op, parts = f.opcode, []
                parts.append(f.payload)
                if not f.fin:
                    continue
                msg = b"".join(parts)
                tunnel.messages += 1
                if first_op == OP_TEXT and msg == b"close-me":
                    stream.send(encode_frame(OP_CLOSE, close_payload(1000, "bye")))
                    stream.sock.shutdown(socket.SHUT_WR)
                    # Wait (bounded) for the client's close frame or EOF.
                    try:
                        while read_frame(stream.need).opcode != OP_CLOSE:
                            pass
                    except (EOFError, OSError):
                        pass
                    return "closed-first"
                stream.send(encode_frame(first_op, msg))
            else:
                stream.send(encode_frame(OP_CLOSE, close_payload(1002, "bad opcode")))
                return "error: opcode %d" % f.opcode


# ------------------------------------------------------------- the client

class HandshakeError(AssertionError):
    pass


class WsClient:
    """A WebSocket client on one TCP connection.

        ws = WsClient(port)
        resp = ws.handshake("/chat", headers=[("Cookie", "MRD=...")])
        ws.send_text("hi"); op, data = ws.recv_message()
        ws.close()
    """

    def __init__(self, port, host="127.0.0.1", timeout=NET_TIMEOUT):
        self.conn = RawConn(host, port, timeout)
        self.key = None
        self.response = None
        self.accepted = False
        self._partial = (None, [])

    # -- handshake

    def handshake_request(self, path="/ws", headers=None, key=None, host=None):
        self.key = key or new_key()
        pairs = [("Host", host or "%s:%d" % (self.conn.host, self.conn.port)),
                 ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                 ("Sec-WebSocket-Key", self.key), ("Sec-WebSocket-Version", "13")]
        given = {k.lower() for k, _ in headers or []}
        pairs = [p for p in pairs if p[0].lower() not in given] + list(headers or [])
        head = "GET %s HTTP/1.1\r\n" % path + "".join("%s: %s\r\n" % p for p in pairs) + "\r\n"
        return head.encode("latin-1")

    def handshake(self, path="/ws", headers=None, key=None, host=None):
        """Sends the upgrade request, reads the answer's head (and its body when
        it is not 101, so the connection can carry another HTTP request).
        Sets .accepted when the answer is a valid 101; returns the Response."""
        self.conn.send(self.handshake_request(path, headers, key, host))
        resp = self.conn.read_head()
        if resp.status != 101:
            self.conn.read_body(resp)
        self.response = resp
        self.accepted = (resp.status == 101
                         and (resp.get("Upgrade") or "").lower() == "websocket"
                         and "upgrade" in [t.strip().lower()
                                           for t in (resp.get("Connection") or "").split(",")]
                         and resp.get("Sec-WebSocket-Accept") == accept_key(self.key))
        return resp

    # -- frames out

    def send_frame(self, opcode, payload=b"", fin=True, mask_key=None):
        self.conn.send(encode_frame(opcode, payload, mask_key or os.urandom(4), fin))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text)

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def ping(self, payload=b""):
        self.send_frame(OP_PING, payload)

    def send_in_thread(self, messages):
        """Sends [(opcode, payload), ...] on a thread (so echoes can be read
        meanwhile). Returns the thread; .error holds an exception if any."""
        def run():
            try:
                for op, data in messages:
                    self.send_frame(op, data)
            except Exception as e:  # noqa: BLE001 - reported to the caller
                t.error = e
        t = threading.Thread(target=run, daemon=True)
        t.error = None
        t.start()
        return t

    # -- frames in

    def _need(self, n):
        c = self.conn
        while len(c.buf) < n:
            if not c._fill():
                raise EOFError("EOF with %d of %d bytes" % (len(c.buf), n))
        out = bytes(c.buf[:n])
        del c.buf[:n]
        return out

    def recv_frame(self):
        return read_frame(self._need)

    def recv_message(self):
        """(opcode, payload) of the next message or control frame. Fragments
        are joined; a control frame arriving between fragments is returned
        first and the message is completed by a later call."""
        while True:
            f = self.recv_frame()
            if f.masked:
                raise AssertionError("server frame is masked")
            if f.opcode in CONTROL_OPS:
                return f.opcode, f.payload
            if f.opcode != OP_CONT:
                self._partial = (f.opcode, [])
            op, parts = self._partial
            parts.append(f.payload)
            if f.fin:
                self._partial = (None, [])
                return op, b"".join(parts)

    def echo(self, payload, opcode=None):
        """Sends payload (str: text, bytes: binary), reads the next message and
        asserts it is the same. Returns the round-trip time in seconds."""
        t0 = time.monotonic()
        if isinstance(payload, str):
            op, data = OP_TEXT, payload.encode("utf-8")
        else:
            op, data = opcode or OP_BINARY, payload
        self.send_frame(op, data)
        got_op, got = self.recv_message()
        if (got_op, got) != (op, data):
            raise AssertionError("echo mismatch: sent op %d %d bytes, got op %d %d bytes (%r)"
                                 % (op, len(data), got_op, len(got), got[:60]))
        return time.monotonic() - t0

    # -- the end

    def close(self, code=1000, reason=""):
        """The closing handshake: sends close, reads until the peer's close
        frame; returns its (code, reason). Then waits (bounded) for EOF."""
        self.send_frame(OP_CLOSE, close_payload(code, reason))
        while True:
            op, payload = self.recv_message()
            if op == OP_CLOSE:
                answer = parse_close(payload)
                break
        self.eof_within(5.0)
        return answer

    def eof_within(self, timeout):
        """Seconds until the peer closes the connection (EOF or reset), or
        None if it is still open after timeout. Bytes that arrive meanwhile
        are kept in the buffer (read them with recv_message)."""
        c = self.conn
        if c.eof:
            return 0.0
        t0 = time.monotonic()
        deadline = t0 + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                c.sock.settimeout(min(left, NET_TIMEOUT))
                try:
                    data = c.sock.recv(262144)
                except socket.timeout:
                    return None
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                if not data:
                    c.eof = True
                    return time.monotonic() - t0
                c.buf += data
        finally:
            if not c.eof:
                c.sock.settimeout(c.timeout)

    def is_open(self, probe="probe"):
        """True if a text echo round trip still works."""
        try:
            self.echo(probe)
            return True
        except (EOFError, OSError, AssertionError):
            return False

    def shutdown(self):
        try:
            self.conn.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        return False


def ws_connect(port, path="/ws", headers=None, host=None, timeout=NET_TIMEOUT):
    """A WsClient that sent its handshake; returns (client, response)."""
    ws = WsClient(port, timeout=timeout)
    try:
        resp = ws.handshake(path, headers, host=host)
    except Exception:
        ws.shutdown()
        raise
    return ws, resp
