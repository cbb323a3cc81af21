"""tests/integration/harness.py: shared helpers for the integration tests.

Each test file is a standalone unittest script run from the repository root.
It starts real processes on free loopback ports (Origin, Meridian), talks to
them over raw sockets (RawConn, request) and waits on observable events with
deadlines (wait_for), never on bare sleeps. Every process it starts is
stopped by PID; every network wait is bounded (socket timeouts <= 10 s).
Stdlib only.

Binaries come from the environment (tests/run.sh sets them):
MERIDIAN_BIN, ORIGIN_BIN, MERIDIANCTL_BIN.
"""

import atexit
import base64
import copy
import hashlib
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest
import threading
import time

MERIDIAN_BIN = os.environ.get("MERIDIAN_BIN", "build/release/meridian")
ORIGIN_BIN = os.environ.get("ORIGIN_BIN", "build/release/origin")
MERIDIANCTL_BIN = os.environ.get("MERIDIANCTL_BIN", "build/release/meridianctl")

NET_TIMEOUT = 10.0
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "LeakSanitizer", "runtime error:")

# Safety net: processes still running when the interpreter exits (a test
# that crashed before its context manager closed) are killed by PID.
_live_procs = set()
_run_serial = itertools.count(1)  # names each Meridian run's stderr file in a config dir


def _kill_leftovers():
    for proc in list(_live_procs):
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


atexit.register(_kill_leftovers)


# ---------------------------------------------------------------- utilities

_handed_out = set()


def free_port(host="127.0.0.1"):
    """A port nothing listens on now; never the same one twice per process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port found")


def addr():
    """A free loopback endpoint, "127.0.0.1:PORT"."""
    return "127.0.0.1:%d" % free_port()


def ipv6_loopback():
    """Whether this machine can bind ::1 (some containers have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def split_addr(addr):
    """'127.0.0.1:80' or '[::1]:80' -> (host, port)."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def wait_for(predicate, timeout=10.0, interval=0.02, message=None, raise_on_timeout=True):
    """Polls predicate() until it returns something truthy; returns that value.

    On timeout raises AssertionError(message) (or returns the last falsy
    value when raise_on_timeout is False)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            if raise_on_timeout:
                raise AssertionError(message or "condition not met within %.1f s" % timeout)
            return value
        time.sleep(interval)


_PERIOD = bytes(((i * 31 + 7) & 0xFF) for i in range(256))
_BLOCK = _PERIOD * 4096  # 1 MiB, starts at a period boundary


def pattern_bytes(n, offset=0):
    """The /bytes pattern: byte i = (i * 31 + 7) & 0xff, for i in [offset, offset + n)."""
    start = offset & 0xFF
    reps = (start + n + 255) // 256
    return (_PERIOD * reps)[start:start + n]


def pattern_chunks(n, piece=1 << 20):
    """Yields the pattern's first n bytes in pieces (for streamed uploads)."""
    sent = 0
    while sent < n:
        size = min(piece, n - sent)
        if sent % 256 == 0 and size <= len(_BLOCK):
            yield _BLOCK[:size]
        else:
            yield pattern_bytes(size, sent)
        sent += size


def pattern_sha256(n):
    h = hashlib.sha256()
    for chunk in pattern_chunks(n):
        h.update(chunk)
    return h.hexdigest()


def deep_merge(base, overrides):
    """Returns base with overrides merged in: dicts recursively, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _stop_proc(proc, timeout):
    """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    _live_procs.discard(proc)
    return proc.returncode


def rss_kib(pid):
    """VmRSS of a process in KiB (from /proc/PID/status)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def instrumented(pid):
    """True if the process runs under ASan or valgrind, whose allocators make
    RSS meaningless for "did it stream?" checks."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
    except OSError:
        return False
    return "libasan" in maps or "vgpreload" in maps


# ------------------------------------------------------------------- origin

def _is_health_check(entry):
    return any(name.lower() == "user-agent" and value == "meridian-health"
               for name, value in entry.get("headers", []))


class Origin:
    """The test origin (tools/origin.c) serving several clusters in one process.

        with Origin({"eu-west-a": ["127.0.0.1:%d" % free_port()]}) as o:
            ...o.requests()...

    clusters: {name: [addr, ...]}; log: keep the per-request JSON log."""

    def __init__(self, clusters, log=True, binary=None):
        self.clusters = {name: list(addrs) for name, addrs in clusters.items()}
        self.binary = binary or ORIGIN_BIN
        self.dir = tempfile.mkdtemp(prefix="mr-origin-")
        self.log_path = os.path.join(self.dir, "origin.log") if log else None
        self.stderr_path = os.path.join(self.dir, "origin.stderr")
        self.proc = None

    @property
    def endpoints(self):
        return [a for addrs in self.clusters.values() for a in addrs]

    def start(self, timeout=10.0):
        args = [self.binary]
        if self.log_path:
            args += ["--log", self.log_path]
        for name, addrs in self.clusters.items():
            args += ["--cluster", name] + addrs
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err,
                                         stdin=subprocess.DEVNULL)
        _live_procs.add(self.proc)
        line = self._read_line(timeout)
        if line.strip() != b"ready":
            self.stop()
            err = self.stderr_text()
            self.remove_files()
            raise RuntimeError("origin did not start (%r): %s" % (line, err))
        return self

    def _read_line(self, timeout):
        """Reads one line from the origin's stdout, bounded by timeout."""
        fd = self.proc.stdout.fileno()
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            piece = os.read(fd, 256)
            if not piece:
                break
            data += piece
        return data

    def stop(self, timeout=5.0):
        """Stops the origin; returns its exit code (0 on a clean SIGTERM)."""
        if self.proc is None:
            return None
        code = _stop_proc(self.proc, timeout)
        self.proc.stdout.close()
        return code

    @property
    def pid(self):
        return self.proc.pid

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def requests(self, since=0, health_checks=False):
        """Parsed log lines (one dict per request head received), from index
        since. meridian's health checks run on their own clock and are left
        out unless asked for, so "nothing reached the origin" means clients."""
        if not self.log_path or not os.path.exists(self.log_path):
            return []
        with open(self.log_path, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")[:-1]  # a last line without "\n" is still being written
        entries = [json.loads(line) for line in lines if line]
        if not health_checks:
            entries = [e for e in entries if not _is_health_check(e)]
        return entries[since:]

    def mark(self):
        """The current number of logged requests, for requests(since=mark)."""
        return len(self.requests())

    def set_health(self, addr, status):
        """Makes /healthz of one endpoint answer status."""
        host, port = split_addr(addr)
        resp = request(port, "POST", "/__health?status=%d" % status, host=host)
        if resp.status != 200:
            raise RuntimeError("set_health %s: %d" % (addr, resp.status))

    def remove_files(self):
        """Deletes the log and stderr files (kept after stop() for inspection)."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is None:
            self.remove_files()
        return False


# ----------------------------------------------------------- configuration

class OriginTestCase(unittest.TestCase):
    """One test origin and one scratch folder for a whole test class.

    ENDPOINTS maps each cluster to how many endpoints it has; setUpClass
    gives each a free loopback address (cls.eps: cluster -> ["HOST:PORT",
    ...]), starts an Origin serving them all and makes cls.tmp;
    tearDownClass stops and removes both."""

    ENDPOINTS = {}
    TMP_PREFIX = "mr-test-"
    ORIGIN_LOG = True  # keep the origin's per-request log

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix=cls.TMP_PREFIX)
        cls.origin = Origin(cls.origin_clusters(), log=cls.ORIGIN_LOG).start()

    @classmethod
    def origin_clusters(cls):
        """The clusters the origin serves ({name: ["HOST:PORT", ...]}); a
        class that names its endpoints otherwise overrides this."""
        cls.eps = {name: ["127.0.0.1:%d" % free_port() for _ in range(count)]
                   for name, count in cls.ENDPOINTS.items()}
        return cls.eps

    @classmethod
    def tearDownClass(cls):
        cls.origin.stop()
        cls.origin.remove_files()
        shutil.rmtree(cls.tmp, ignore_errors=True)


def iso8601(text):
    """Whether text is an ISO 8601 UTC or offset timestamp, as the admin API writes them."""
    return isinstance(text, str) and bool(
        re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$", text))


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metric(m, name, **labels):
    """The sum of meridian m's /metrics samples of name whose labels include
    labels (0 when there is none)."""
    resp = m.admin("GET", "/metrics")
    if resp.status != 200:
        raise AssertionError("GET /metrics: %d %r" % (resp.status, resp.body[:200]))
    total = 0.0
    for line in resp.text.splitlines():
        s = _SAMPLE.match(line)
        if not s or s.group(1) != name:
            continue
        have = dict(_LABEL.findall(s.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(s.group(3))
    return total


def all_clusters(st):
    """The clusters of a GET /api/v1/status answer, by name."""
    return {c["name"]: c for r in st["regions"] for c in r["clusters"]}


class AdminStatus:
    """Status reads through the admin API, for a TestCase (a mixin).
    CLUSTERS names the clusters wait_healthy() waits for by default."""

    CLUSTERS = ()

    def wait_healthy(self, m, names=None):
        names = self.CLUSTERS if names is None else names

        def healthy():
            try:
                cl = all_clusters(m.admin("GET", "/api/v1/status").json())
            except (OSError, ValueError, KeyError):
                return False
            return all(cl.get(n, {}).get("healthy") for n in names)
        wait_for(healthy, timeout=8, message="clusters %r healthy" % (names,))

    def status(self, m):
        resp = m.admin("GET", "/api/v1/status")
        self.assertEqual(resp.status, 200, "GET /api/v1/status: %r" % resp.body[:300])
        return resp.json()

    def cluster(self, m, name):
        return all_clusters(self.status(m))[name]

    def gen(self, m):
        return self.status(m)["generation"]


def write_config(directory, overrides=None):
    """Writes DIR/meridian.json, DIR/session.keys and DIR/admin.token.

    The default config has one region "local" with one cluster "local-a" whose
    one endpoint is a free port (nothing listens there: tests override
    "regions" with their origins' addresses). Listener and admin ports are
    fresh free ports. overrides is deep-merged (dicts merge, lists replace).
    Returns (path, config dict)."""
    os.makedirs(directory, exist_ok=True)
    secret = base64.b64encode(os.urandom(32)).decode()
    # Secrets are 0600, as meridian expects (it warns about others).
    with open(os.open(os.path.join(directory, "session.keys"),
                      os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write("k1:%s\n" % secret)
    token = base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
    with open(os.open(os.path.join(directory, "admin.token"),
                      os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(token + "\n")
    base = {
        "workers": 2,
        "listeners": [{"name": "http", "address": "127.0.0.1:%d" % free_port()}],
        "trusted_proxies": ["127.0.0.0/8", "::1/128"],
        "session": {
            "cookie": "MRD",
            "max_age_s": 86400,
            "keys_file": "session.keys",
            "secure": False,
            "http_only": True,
            "same_site": "Lax",
        },
        "health": {
            "path": "/healthz",
            "interval_ms": 100,
            "timeout_ms": 80,
            "rise": 2,
            "fall": 2,
            "min_healthy": 0.5,
        },
        "regions": [{
            "name": "local",
            "lat": 0.0,
            "lon": 0.0,
            "clusters": [{
                "name": "local-a",
                "weight": 100,
                "endpoints": ["127.0.0.1:%d" % free_port()],
            }],
        }],
        "routing": {"default": ["local"]},
        "timeouts": {
            "client_header_ms": 5000,
            "client_idle_ms": 10000,
            "upstream_connect_ms": 1000,
            "upstream_response_ms": 5000,
        },
        "admin": {"address": "127.0.0.1:%d" % free_port(), "token_file": "admin.token"},
        "state_file": os.path.join(os.path.abspath(directory), "state.json"),
        "access_log": os.path.join(os.path.abspath(directory), "access.log"),
    }
    config = deep_merge(base, overrides)
    path = os.path.join(directory, "meridian.json")
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return path, config


def region(name, clusters, lat=0.0, lon=0.0):
    """A regions[] entry; clusters is {name: [addrs]} or {name: ([addrs], weight)}."""
    out = []
    for cname, spec in clusters.items():
        addrs, weight = spec if isinstance(spec, tuple) else (spec, 100)
        out.append({"name": cname, "weight": weight, "endpoints": list(addrs)})
    return {"name": name, "lat": lat, "lon": lon, "clusters": out}


# ----------------------------------------------------------------- meridian

class Meridian:
    """meridian -c CONFIG, stopped by PID; fails the test on sanitizer reports.

        path, cfg = write_config(tmp, {...})
        with Meridian(path) as m:
            request(m.port, "GET", "/")
    """

    def __init__(self, config_path, binary=None, args=()):
        self.config_path = config_path
        self.binary = binary or MERIDIAN_BIN
        self.args = list(args)
        with open(config_path) as f:
            self.config = json.load(f)
        self.dir = os.path.dirname(os.path.abspath(config_path))
        self.host, self.port = split_addr(self.config["listeners"][0]["address"])
        admin = self.config.get("admin", {})
        self.admin_host, self.admin_port = (split_addr(admin["address"])
                                            if "address" in admin else (None, None))
        self.token = None
        if admin.get("token_file"):
            token_path = os.path.join(self.dir, admin["token_file"])
            if os.path.exists(token_path):
                with open(token_path) as f:
                    self.token = f.read().strip()
        self.stderr_path = os.path.join(self.dir, "meridian.%d.stderr" % next(_run_serial))
        self.proc = None
        self.returncode = None

    def start(self, timeout=10.0):
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([self.binary, "-c", self.config_path] + self.args,
                                         stdout=err, stderr=err, stdin=subprocess.DEVNULL)
        _live_procs.add(self.proc)

        def accepting():
            if self.proc.poll() is not None:
                raise AssertionError("meridian exited with %s before listening:\n%s"
                                     % (self.proc.returncode, self.stderr_text()))
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return True
            except OSError:
                return False

        try:
            wait_for(accepting, timeout=timeout, interval=0.02,
                     message="meridian not listening on %s:%d within %.0f s"
                     % (self.host, self.port, timeout))
        except AssertionError:
            self.stop()
            raise
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=10.0):
        """SIGTERM and wait (SIGKILL after timeout); returns the exit code."""
        if self.proc is not None and self.returncode is None:
            self.returncode = _stop_proc(self.proc, timeout)
        return self.returncode

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def rss_kib(self):
        return rss_kib(self.proc.pid)

    def sanitizer_report(self):
        text = self.stderr_text()
        return text if any(mark in text for mark in SANITIZER_MARKS) else None

    def admin(self, method, path, body=None, token=True, headers=None,
              content_type="application/json"):
        """One admin API request; body may be a dict (sent as JSON). A body or
        a method other than GET/HEAD carries content_type (None: no
        Content-Type), as meridianctl and the dashboard send it."""
        hdrs = list(headers or [])
        if token is True and self.token:
            hdrs.append(("Authorization", "Bearer " + self.token))
        elif isinstance(token, str):
            hdrs.append(("Authorization", "Bearer " + token))
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        if content_type is not None and (body is not None or method not in ("GET", "HEAD")):
            hdrs.append(("Content-Type", content_type))
        return request(self.admin_port, method, path, headers=hdrs, body=body,
                       host=self.admin_host)

    def ctl(self, *args, timeout=10.0):
        """Runs meridianctl against this instance; returns CompletedProcess (text)."""
        cmd = [MERIDIANCTL_BIN, "--admin", "http://%s:%d" % (self.admin_host, self.admin_port),
               "--token-file", os.path.join(self.dir, self.config["admin"]["token_file"])]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        report = self.sanitizer_report()
        if exc_type is not None:
            # Do not mask the test's own failure; show what meridian said.
            tail = "\n".join(self.stderr_text().splitlines()[-60:])
            if tail:
                print("--- meridian stderr (tail) ---\n" + tail, flush=True)
            return False
        if report:
            raise AssertionError("sanitizer report in meridian stderr:\n" + report)
        return False


# ------------------------------------------------------------- HTTP client

class IncompleteResponse(Exception):
    """The peer closed before the response was complete; .partial holds what came."""

    def __init__(self, message, partial=None):
        super().__init__(message)
        self.partial = partial


class Headers:
    """Lookups over self.headers, [(name, value), ...] in arrival order;
    names compare without case (a mixin for requests and responses)."""

    def get(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def get_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


class Response(Headers):
    def __init__(self, version, status, reason, headers):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value), ...] in arrival order
        self.body = b""
        self.trailers = []
        self.length = 0       # body bytes received
        self.sha256 = None    # set by hashed reads
        self.framing = None   # "length", "chunked", "close" or "none"
        self.informational = []  # 1xx responses skipped before this one

    def has(self, name):
        return self.get(name) is not None

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %d %s %r>" % (self.status, self.reason, self.headers)


def build_request(method, path, headers=None, body=None, host="127.0.0.1", version="1.1"):
    """Request bytes. headers: dict or list of pairs. Adds Host, and Content-Length
    for a bytes body when neither Content-Length nor Transfer-Encoding is given."""
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = {k.lower() for k, _ in pairs}
    if "host" not in names and version == "1.1":
        pairs.insert(0, ("Host", host))
    if isinstance(body, str):
        body = body.encode()
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        pairs.append(("Content-Length", str(len(body))))
    head = "%s %s HTTP/%s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in pairs) + "\r\n"
    return head.encode("latin-1") + (body or b"")


class RawConn:
    """One client TCP connection speaking raw HTTP/1.1, every read bounded."""

    def __init__(self, host="127.0.0.1", port=None, timeout=NET_TIMEOUT):
        self.host = host
        self.port = port
        self.timeout = min(timeout, NET_TIMEOUT)
        self.sock = socket.create_connection((host, port), timeout=self.timeout)
        self.sock.settimeout(self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    # -- sending

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def send_request(self, method, path, headers=None, body=None, version="1.1"):
        host = self.host if ":" not in self.host else "[%s]" % self.host
        self.send(build_request(method, path, headers, body, "%s:%d" % (host, self.port),
                                version))

    def send_body(self, chunks, chunked=True):
        """Sends a body from an iterable of bytes, as chunks or raw (after a head
        that declared Content-Length); returns the byte count."""
        total = 0
        for piece in chunks:
            if not piece:
                continue
            total += len(piece)
            if chunked:
                self.sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
            else:
                self.sock.sendall(piece)
        if chunked:
            self.sock.sendall(b"0\r\n\r\n")
        return total

    def send_body_in_thread(self, chunks, chunked=True):
        """send_body on a thread, so a response can be read meanwhile (/echo).
        Returns the thread; .join() it, then .error holds an exception if any."""
        def run():
            try:
                t.sent = self.send_body(chunks, chunked)
            except Exception as e:  # noqa: BLE001 - reported to the caller
                t.error = e
        t = threading.Thread(target=run, daemon=True)
        t.error = None
        t.sent = 0
        t.start()
        return t

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    # -- receiving

    def _fill(self):
        """Reads more into the buffer; False at EOF."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_line(self, limit=65536):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > limit:
                raise ValueError("line too long")
            if not self._fill():
                raise IncompleteResponse("EOF while reading a line", bytes(self.buf))

    def _read_some(self, limit):
        """Up to limit bytes (at least one); b"" at EOF."""
        if not self.buf and not self._fill():
            return b""
        piece = bytes(self.buf[:limit])
        del self.buf[:limit]
        return piece

    def read_head(self, skip_informational=True):
        """Reads a response head; returns a Response without its body."""
        informational = []
        while True:
            line = self._read_line()
            parts = line.decode("latin-1").split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ValueError("bad status line: %r" % line)
            headers = []
            while True:
                h = self._read_line()
                if not h:
                    break
                name, _, value = h.decode("latin-1").partition(":")
                headers.append((name, value.strip(" \t")))
            resp = Response(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers)
            if 100 <= resp.status < 200 and resp.status != 101 and skip_informational:
                informational.append(resp)
                continue
            resp.informational = informational
            return resp

    def read_body(self, resp, head_request=False, sink=None):
        """Reads resp's body by its framing. sink(piece) receives the body
        instead of resp.body when given. Raises IncompleteResponse on early EOF."""
        def take(piece):
            resp.length += len(piece)
            if sink:
                sink(piece)
            else:
                parts.append(piece)

        parts = []
        te = (resp.get("Transfer-Encoding") or "").lower()
        cl = resp.get("Content-Length")
        if head_request or resp.status in (204, 304) or 100 <= resp.status < 200:
            resp.framing = "none"
        elif te:
            if not te.endswith("chunked"):
                resp.framing = "close"
            else:
                resp.framing = "chunked"
                while True:
                    size_line = self._read_line()
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        break
                    left = size
                    while left:
                        piece = self._read_some(min(left, 1 << 20))
                        if not piece:
                            resp.body = b"".join(parts)
                            raise IncompleteResponse("EOF inside a chunk", resp)
                        take(piece)
                        left -= len(piece)
                    if self._read_line() != b"":
                        raise ValueError("chunk not followed by CRLF")
                while True:
                    t = self._read_line()
                    if not t:
                        break
                    name, _, value = t.decode("latin-1").partition(":")
                    resp.trailers.append((name, value.strip()))
        elif cl is not None:
            resp.framing = "length"
            left = int(cl)
            while left:
                piece = self._read_some(min(left, 1 << 20))
                if not piece:
                    resp.body = b"".join(parts)
                    raise IncompleteResponse("EOF after %d of %s bytes" % (resp.length, cl), resp)
                take(piece)
                left -= len(piece)
        else:
            resp.framing = "close"
        if resp.framing == "close":
            while True:
                piece = self._read_some(1 << 20)
                if not piece:
                    break
                take(piece)
        if not sink:
            resp.body = b"".join(parts)
        return resp

    def read_response(self, head_request=False, sink=None, skip_informational=True):
        """Reads one whole response (1xx ones skipped, kept in .informational)."""
        resp = self.read_head(skip_informational)
        return self.read_body(resp, head_request, sink)

    def read_response_hashed(self, head_request=False):
        """Reads a response whose body is only counted and hashed, never kept:
        sets .length and .sha256 (hex); .body stays empty."""
        h = hashlib.sha256()
        resp = self.read_response(head_request, sink=h.update)
        resp.sha256 = h.hexdigest()
        return resp

    def request(self, method, path, headers=None, body=None, version="1.1"):
        """Sends one request on this connection and reads its response."""
        self.send_request(method, path, headers, body, version)
        return self.read_response(head_request=(method == "HEAD"))

    def closed(self, timeout=2.0):
        """True if the peer closes (EOF or reset) within timeout with nothing
        pending; bytes that arrive meanwhile are kept and give False."""
        if self.buf:
            return False
        if self.eof:
            return True
        self.sock.settimeout(min(timeout, NET_TIMEOUT))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            data = b""
        finally:
            self.sock.settimeout(self.timeout)
        if not data:
            self.eof = True
            return True
        self.buf += data
        return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def request(port, method, path, headers=None, body=None, host="127.0.0.1",
            timeout=NET_TIMEOUT, version="1.1"):
    """One request on a fresh connection, closed afterwards; returns the Response."""
    with RawConn(host, port, timeout) as conn:
        return conn.request(method, path, headers, body, version)
