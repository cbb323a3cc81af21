"""tests/integration/test_tls.py: TLS listeners (issue 6).

What a user of an HTTPS edge checks with curl, `openssl s_client` and a
TLS client library: requests over HTTPS reach the origin with
X-Forwarded-Proto: https and get a Secure session cookie; the certificate
is picked by SNI (subjectAltName exact, then one-label wildcard, CN only
without SAN DNS, else the first certificate); TLS 1.2 and 1.3 work, older
versions and excluded ciphers are refused; ALPN answers http/1.1; sessions
resume (TLS 1.2 and 1.3, on any worker, across a reload) until their
tickets' keys rotate out; OCSP responses are stapled for the certificate
that has one; a reload serves new certificates to new connections while a
download started before it completes intact; a bad certificate (expired,
key that does not match, unreadable file) is refused by `meridian -t`, by
the admin reload (400, errors naming the JSON path), by SIGHUP and
meridianctl, and the old certificate stays; failed handshakes are counted
in /metrics; a plain listener with redirect_https answers 308 to https.

The PKI (tlscerts.py) is made once per run; each edge copies the files it
uses into its own config directory and names them relatively (they resolve
against the config file's directory). The TLS listener is listeners[1]
("https"); listeners[0] ("http") is plain, so error paths read
listeners[1].tls....
"""

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (MERIDIAN_BIN, Meridian, Origin, RawConn, addr, deep_merge,  # noqa: E402
                     free_port, metric, pattern_bytes, pattern_sha256, region, request, wait_for,
                     write_config)
from routing_helpers import reload as sighup_reload  # noqa: E402
from routing_helpers import rewrite_config, set_cookie  # noqa: E402
from tlscerts import OPENSSL, shared_pki  # noqa: E402

CURL = os.environ.get("CURL_BIN", "curl")
TOOL_TIMEOUT = 15  # seconds, for every openssl / curl / meridian -t run

BASE = {
    "health": {"interval_ms": 1000, "timeout_ms": 200},
    "timeouts": {"client_header_ms": 3000, "client_idle_ms": 20000,
                 "upstream_connect_ms": 500, "upstream_response_ms": 20000},
}

# openssl s_client markers of a refusal made by the client itself (then a
# "refused" check would prove nothing about the server).
CLIENT_SIDE_REFUSALS = ("no protocols available", "legacy sigalg disallowed",
                        "no ciphers available", "unsupported protocol")

A, B = "a.meridian.test", "b.meridian.test"
HTTP_CLOSE = b"GET /s_client HTTP/1.1\r\nHost: a.meridian.test\r\nConnection: close\r\n\r\n"


# ------------------------------------------------------------ TLS clients

def client_context(min_version=None, max_version=None, ciphers=None, alpn=None):
    """A client context that accepts any certificate (tests compare the served
    certificate's bytes instead) and sends SNI only when asked."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_connect(port, sni=None, ctx=None, session=None, timeout=5.0):
    """A TLS connection (handshake done) to 127.0.0.1:port; raises ssl.SSLError
    or OSError when the handshake fails."""
    ctx = ctx or client_context()
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=sni, session=session)
    except BaseException:
        raw.close()
        raise


def served_der(port, sni=None, ctx=None):
    """The DER of the certificate the server presents for sni (None: no SNI)."""
    with tls_connect(port, sni, ctx) as s:
        return s.getpeercert(binary_form=True)


def handshake_fails(port, sni=None, ctx=None):
    """The error of a handshake that fails, or None when it succeeds."""
    try:
        with tls_connect(port, sni, ctx):
            return None
    except (ssl.SSLError, OSError) as e:
        return e


class TLSConn(RawConn):
    """RawConn over TLS: the same request/response helpers, Host is the SNI name."""

    def __init__(self, port, sni=A, ctx=None, session=None, timeout=10.0):
        super().__init__("127.0.0.1", port, timeout)
        ctx = ctx or client_context()
        self.sock = ctx.wrap_socket(self.sock, server_hostname=sni, session=session)
        self.sni = sni

    def send_request(self, method, path, headers=None, body=None, version="1.1"):
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        if version == "1.1" and not any(k.lower() == "host" for k, _ in pairs):
            pairs.insert(0, ("Host", self.sni or "127.0.0.1"))
        super().send_request(method, path, pairs, body, version)


def https_get(port, path, sni=A, ctx=None, session=None, headers=None):
    """One request over a fresh TLS connection; returns (Response, SSLSocket info)."""
    with TLSConn(port, sni, ctx, session) as c:
        resp = c.request("GET", path, headers)
        resp.tls = {"reused": c.sock.session_reused, "session": c.sock.session,
                    "version": c.sock.version(), "der": c.sock.getpeercert(True)}
        return resp


def s_client(port, *args, sni=None, data=b"", timeout=TOOL_TIMEOUT):
    """openssl s_client against 127.0.0.1:port (no SNI unless sni); returns
    (exit code, stdout + stderr as text). stdin is data, then EOF."""
    cmd = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port]
    cmd += ["-servername", sni] if sni else ["-noservername"]
    res = subprocess.run(cmd + list(args), input=data, capture_output=True, timeout=timeout)
    return res.returncode, (res.stdout + res.stderr).decode("utf-8", "replace")


def s_client_ok(rc, out):
    """s_client completed a handshake: exit 0 and a negotiated cipher."""
    return (rc == 0 and "Cipher is (NONE)" not in out
            and re.search(r"^(New|Reused), TLSv1\.[0-3], Cipher is \S+", out, re.M) is not None)


def s_client_field(out, pattern):
    m = re.search(pattern, out, re.M)
    return m.group(1).strip() if m else None


def s_client_protocol(out):
    """The negotiated version: the SSL-Session block's Protocol line (printed
    when a session exists at handshake end, so not always for TLS 1.3), else
    the "New, TLSv1.3, Cipher is ..." line (whose version is the cipher's,
    which is the protocol's for TLS 1.3 suites and TLS 1.2 AEAD ciphers)."""
    return (s_client_field(out, r"^\s*Protocol\s*:\s*(\S+)")
            or s_client_field(out, r"^(?:New|Reused), (TLSv1\.[0-3]), Cipher is "))


def s_client_subject(out):
    return s_client_field(out, r"^subject=(.*)$")


def curl_https(port, path, host=A, ca=None, extra=()):
    """curl -i over HTTPS with certificate verification against ca, host resolved
    to 127.0.0.1. Returns (exit code, status, [(name, value)], body, verbose text)."""
    cmd = [CURL, "-sS", "-v", "-i", "--max-time", "10", "--cacert", ca,
           "--resolve", "%s:%d:127.0.0.1" % (host, port),
           "https://%s:%d%s" % (host, port, path)] + list(extra)
    res = subprocess.run(cmd, capture_output=True, timeout=TOOL_TIMEOUT)
    verbose = res.stderr.decode("utf-8", "replace")
    if res.returncode != 0:
        return res.returncode, None, [], b"", verbose
    head, _, body = res.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [(n.strip(), v.strip()) for n, _, v in (l.partition(":") for l in lines[1:])]
    return 0, status, headers, body, verbose


def closed_soon(sock, timeout):
    """Reads (and drops: an alert, an error page) until the peer closes; True
    if it closes within timeout."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True


def header(headers, name):
    return [v for n, v in headers if n.lower() == name.lower()]


# ------------------------------------------------------------------ edge

class Edge(Meridian):
    """A Meridian whose listeners are "http" (plain, m.port) and "https" (TLS,
    m.tls_port); start() also waits for a TLS handshake to succeed."""

    def __init__(self, config_path):
        super().__init__(config_path)
        by_name = {l["name"]: l for l in self.config["listeners"]}
        self.tls_port = int(by_name["https"]["address"].rpartition(":")[2])

    def start(self, timeout=10.0):
        super().start(timeout)

        def tls_up():
            if not self.running():
                raise AssertionError("meridian exited:\n" + self.stderr_text())
            return handshake_fails(self.tls_port, A) is None

        try:
            wait_for(tls_up, timeout=5, message="no TLS handshake on the https listener "
                     "(port %d) within 5 s:\n%s" % (self.tls_port, self.stderr_text()[-2000:]))
        except AssertionError:
            self.stop()
            raise
        return self


class TLSTestBase(unittest.TestCase):
    """One origin (cluster "main") and the PKI for the whole class."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mr-tls-")
        cls.pki = shared_pki()
        cls.main = [addr()]
        cls.origin = Origin({"main": cls.main}).start()

    @classmethod
    def tearDownClass(cls):
        cls.origin.stop()
        cls.origin.remove_files()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- configuration

    def place(self, directory, name, as_name=None):
        """Copies certificate NAME (and its key, OCSP response if any) into
        directory as AS_NAME.pem / .key / .ocsp.der; returns the base name."""
        as_name = as_name or name
        shutil.copyfile(self.pki.certs[name], os.path.join(directory, as_name + ".pem"))
        shutil.copyfile(self.pki.keys[name], os.path.join(directory, as_name + ".key"))
        if name in self.pki.ocsp:
            shutil.copyfile(self.pki.ocsp[name], os.path.join(directory, as_name + ".ocsp.der"))
        return as_name

    def cert_entry(self, name, ocsp=False):
        entry = {"cert": name + ".pem", "key": name + ".key"}
        if ocsp:
            entry["ocsp"] = name + ".ocsp.der"
        return entry

    def config(self, certs=("a", "b"), ocsp=(), tls=None, http=None, overrides=None):
        """Writes a config in a fresh directory; returns (path, config dict).
        certs: certificate names in order (the first is the default); ocsp:
        the names configured with their OCSP response; tls / http: extra keys
        of the https / http listener."""
        d = tempfile.mkdtemp(dir=self.tmp)
        for name in self.pki.certs:
            self.place(d, name)
        shutil.copyfile(self.pki.wrong_key, os.path.join(d, "wrong.key"))
        tls_block = {"certificates": [self.cert_entry(n, n in ocsp) for n in certs]}
        tls_block.update(tls or {})
        http_listener = {"name": "http", "address": addr()}
        http_listener.update(http or {})
        cfg = deep_merge(BASE, {
            "listeners": [http_listener,
                          {"name": "https", "address": addr(), "tls": tls_block}],
            "regions": [region("r1", {"main": self.main})],
            "routing": {"default": ["r1"]},
        })
        cfg = deep_merge(cfg, overrides)
        return write_config(d, cfg)

    def edge(self, **kw):
        path, _ = self.config(**kw)
        return Edge(path)

    def check_config(self, path):
        """meridian -t -c path: (exit code, output lines)."""
        res = subprocess.run([MERIDIAN_BIN, "-t", "-c", path], capture_output=True, text=True,
                             timeout=TOOL_TIMEOUT, stdin=subprocess.DEVNULL)
        return res.returncode, [l for l in (res.stdout + res.stderr).splitlines() if l.strip()]

    # -- assertions

    def assertServes(self, port, sni, want, msg=""):
        der = served_der(port, sni)
        self.assertEqual(self.pki.which(der), want,
                         "%sSNI %r: expected certificate %r" % (msg and msg + ": ", sni, want))


# ======================================================================

class HttpsProxyTest(TLSTestBase):

    def test_curl_https_reaches_origin_as_https_with_secure_cookie(self):
        with self.edge() as m:
            mark = self.origin.mark()
            rc, status, headers, body, verbose = curl_https(
                m.tls_port, "/hello?x=1", ca=self.pki.ca_cert,
                extra=["-H", "X-Forwarded-Proto: http"])
            self.assertEqual(rc, 0, "curl failed:\n" + verbose)
            self.assertEqual(status, 200)
            self.assertIn("SSL certificate verify ok", verbose,
                          "curl verified a.meridian.test's certificate against the test CA")
            seen = json.loads(body)
            self.assertEqual(seen["path"], "/hello?x=1")
            self.assertEqual(seen["headers"].get("x-forwarded-proto"), "https",
                             "the edge sets X-Forwarded-Proto: https, whatever the client sent")
            entry = wait_for(lambda: [e for e in self.origin.requests(since=mark)
                                      if e["path"] == "/hello?x=1"], timeout=5,
                             message="origin logged the request")[0]
            xfp = [v for n, v in entry["headers"] if n.lower() == "x-forwarded-proto"]
            self.assertEqual(xfp, ["https"], "origin log: one X-Forwarded-Proto: https")

            cookies = [v for v in header(headers, "Set-Cookie") if v.startswith("MRD=")]
            self.assertEqual(len(cookies), 1, "one session cookie: %r" % headers)
            attrs = [p.strip() for p in cookies[0].split(";")[1:]]
            self.assertIn("Secure", attrs,
                          "cookie over TLS is Secure although session.secure is false")

            # The plain listener of the same edge is unchanged.
            resp = request(m.port, "GET", "/plain", headers=[("X-Forwarded-Proto", "https")])
            self.assertEqual(resp.json()["headers"].get("x-forwarded-proto"), "http")
            _, plain_attrs = set_cookie(resp)
            self.assertNotIn("Secure", plain_attrs, "plain listener: no Secure (secure false)")

    def test_proxy_protocol_header_before_the_handshake(self):
        # Behind an L4 balancer: the PROXY header comes first, in clear, then
        # TLS; the header's source is the client the origin hears of.
        path, cfg = self.config()
        tls_listener = dict(cfg["listeners"][1], name="pp-https", address=addr(),
                            proxy_protocol=True)
        cfg["listeners"].append(tls_listener)
        with open(path, "w") as f:
            json.dump(cfg, f)
        port = int(tls_listener["address"].rpartition(":")[2])
        with Edge(path) as m:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            raw.sendall(b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 443\r\n")
            conn = client_context().wrap_socket(raw, server_hostname=B)
            try:
                self.assertEqual(self.pki.which(conn.getpeercert(True)), "b",
                                 "SNI still picks the certificate after a PROXY header")
                conn.sendall(b"GET /pp-tls HTTP/1.1\r\nHost: b.meridian.test\r\n"
                             b"Connection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            finally:
                conn.close()
            head, _, body = data.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
            seen = json.loads(body)
            self.assertEqual(seen["headers"].get("x-forwarded-for"), "203.0.113.9")
            self.assertEqual(seen["headers"].get("x-forwarded-proto"), "https")
            # Without the header, the TLS listener with proxy_protocol closes.
            self.assertIsNotNone(handshake_fails(port, A),
                                 "a handshake without a PROXY header first fails")

    def test_second_name_with_curl(self):
        with self.edge() as m:
            rc, status, _, body, verbose = curl_https(m.tls_port, "/b", host=B,
                                                      ca=self.pki.ca_cert)
            self.assertEqual(rc, 0, "curl (verifying b.meridian.test) failed:\n" + verbose)
            self.assertEqual((status, json.loads(body)["path"]), (200, "/b"))

    def test_keepalive_and_bodies_over_tls(self):
        with self.edge() as m, TLSConn(m.tls_port, A) as c:
            resps = [c.request("GET", "/ka%d" % i) for i in range(3)]
            self.assertEqual([r.json()["path"] for r in resps], ["/ka0", "/ka1", "/ka2"],
                             "three requests on one TLS connection")
            resp = c.request("GET", "/bytes?n=3000000")
            self.assertEqual((resp.status, resp.length), (200, 3000000))
            self.assertEqual(hashlib.sha256(resp.body).hexdigest(), pattern_sha256(3000000))
            upload = pattern_bytes(2000000)
            resp = c.request("POST", "/echo", body=upload)
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.body, upload, "a 2 MB body echoed intact through TLS")
            self.assertFalse(c.closed(0.2), "connection still open")


class SniTest(TLSTestBase):
    CERTS = ("a", "b", "wild", "cnonly", "decoy")

    def test_certificate_chosen_by_sni(self):
        cases = [
            (A, "a"), (B, "b"),
            ("x.w.meridian.test", "wild"), ("y-1.w.meridian.test", "wild"),
            ("c.meridian.test", "cnonly"),              # no SAN DNS: the CN counts
            ("d.meridian.test", "decoy"),               # SAN DNS
            ("decoy.meridian.test", "a"),               # CN ignored when SAN DNS exist
            ("a.b.w.meridian.test", "a"),               # wildcard spans exactly one label
            ("w.meridian.test", "a"),                   # ... and at least one
            ("unknown.example", "a"),                   # no match: the first certificate
            (None, "a"),                                # no SNI: the first certificate
        ]
        with self.edge(certs=self.CERTS) as m:
            for sni, want in cases:
                with self.subTest(sni=sni):
                    self.assertServes(m.tls_port, sni, want)

    def test_default_is_the_first_certificate(self):
        with self.edge(certs=("b", "a")) as m:
            self.assertServes(m.tls_port, None, "b", "no SNI")
            self.assertServes(m.tls_port, "nope.meridian.test", "b", "unknown name")
            self.assertServes(m.tls_port, A, "a")

    def test_s_client_shows_the_chosen_certificate(self):
        with self.edge(certs=self.CERTS) as m:
            for sni, subject in ((A, "CN = a.meridian.test"), (B, "CN = b.meridian.test"),
                                 ("x.w.meridian.test", "CN = *.w.meridian.test"),
                                 ("unknown.example", "CN = a.meridian.test"),
                                 (None, "CN = a.meridian.test")):
                with self.subTest(sni=sni):
                    args = ["-CAfile", self.pki.ca_cert]
                    if sni and not sni.startswith("unknown"):
                        args += ["-verify_hostname", sni]
                    rc, out = s_client(m.tls_port, *args, sni=sni)
                    self.assertTrue(s_client_ok(rc, out), out)
                    self.assertEqual(s_client_subject(out), subject)
                    self.assertIn("Verify return code: 0 (ok)", out,
                                  "chain (and name) verify against the test CA")


class VersionCipherAlpnTest(TLSTestBase):

    def test_tls11_and_older_refused_12_and_13_accepted(self):
        with self.edge() as m:
            for flag in ("-tls1_1", "-tls1"):
                with self.subTest(version=flag):
                    rc, out = s_client(m.tls_port, flag, "-cipher", "DEFAULT:@SECLEVEL=0", sni=A)
                    for marker in CLIENT_SIDE_REFUSALS:
                        self.assertNotIn(marker, out, "the client refused by itself:\n" + out)
                    self.assertFalse(s_client_ok(rc, out), "%s accepted:\n%s" % (flag, out))
                    self.assertNotEqual(rc, 0)
            for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
                with self.subTest(version=flag):
                    rc, out = s_client(m.tls_port, flag, sni=A)
                    self.assertTrue(s_client_ok(rc, out), "%s refused:\n%s" % (flag, out))
                    self.assertEqual(s_client_protocol(out), version)
            for v, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
                            (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
                resp = https_get(m.tls_port, "/v", ctx=client_context(v, v))
                self.assertEqual((resp.status, resp.tls["version"]), (200, name))

    def test_min_version_tls13_refuses_tls12(self):
        with self.edge(tls={"min_version": "TLSv1.3"}) as m:
            rc, out = s_client(m.tls_port, "-tls1_2", sni=A)
            self.assertFalse(s_client_ok(rc, out), "TLS 1.2 accepted:\n" + out)
            err = handshake_fails(m.tls_port, A, client_context(ssl.TLSVersion.TLSv1_2,
                                                                ssl.TLSVersion.TLSv1_2))
            self.assertIsNotNone(err, "TLS 1.2 handshake refused")
            rc, out = s_client(m.tls_port, "-tls1_3", sni=A)
            self.assertTrue(s_client_ok(rc, out), out)
            self.assertEqual(s_client_protocol(out), "TLSv1.3")

    def test_default_tls12_ciphers_are_ecdhe_aead(self):
        tls12 = ssl.TLSVersion.TLSv1_2
        with self.edge() as m:
            for cipher in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                           "ECDHE-ECDSA-CHACHA20-POLY1305"):
                with self.subTest(cipher=cipher):
                    with tls_connect(m.tls_port, A, client_context(tls12, tls12, cipher)) as s:
                        self.assertEqual(s.cipher()[0], cipher)
            for cipher in ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA"):
                with self.subTest(cipher=cipher):
                    self.assertIsNotNone(
                        handshake_fails(m.tls_port, A, client_context(tls12, tls12, cipher)),
                        "CBC suite %s accepted by default" % cipher)

    def test_configured_ciphers_and_ciphersuites(self):
        tls12 = ssl.TLSVersion.TLSv1_2
        with self.edge(tls={"ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256",
                            "ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"}) as m:
            with tls_connect(m.tls_port, A, client_context(tls12, tls12)) as s:
                self.assertEqual(s.cipher()[0], "ECDHE-ECDSA-AES128-GCM-SHA256",
                                 "TLS 1.2: the one configured cipher")
            self.assertIsNotNone(handshake_fails(m.tls_port, A, client_context(
                tls12, tls12, "ECDHE-ECDSA-AES256-GCM-SHA384")), "unlisted TLS 1.2 cipher")
            rc, out = s_client(m.tls_port, "-tls1_3", sni=A)
            self.assertTrue(s_client_ok(rc, out), out)
            self.assertIn("Cipher is TLS_CHACHA20_POLY1305_SHA256", out)
            rc, out = s_client(m.tls_port, "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256",
                               sni=A)
            self.assertFalse(s_client_ok(rc, out), "unlisted TLS 1.3 suite accepted:\n" + out)

    def test_alpn_answers_http11(self):
        with self.edge() as m:
            rc, out = s_client(m.tls_port, "-alpn", "h2,http/1.1", sni=A)
            self.assertTrue(s_client_ok(rc, out), out)
            self.assertIn("ALPN protocol: http/1.1", out)
            resp = https_get(m.tls_port, "/alpn", ctx=client_context(alpn=["h2", "http/1.1"]))
            self.assertEqual(resp.status, 200)
            with tls_connect(m.tls_port, A, client_context(alpn=["h2", "http/1.1"])) as s:
                self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
            rc, status, _, _, verbose = curl_https(m.tls_port, "/alpn", ca=self.pki.ca_cert)
            self.assertEqual((rc, status), (0, 200), verbose)
            self.assertRegex(verbose, r"ALPN[:,] server accepted (to use )?http/1\.1")


class ResumptionTest(TLSTestBase):

    def resumes(self, m, version, tries=6):
        """A full handshake, then `tries` connections resuming its session;
        returns the session."""
        ctx = client_context(version, version)
        first = https_get(m.tls_port, "/full", ctx=ctx)
        self.assertEqual(first.status, 200)
        self.assertFalse(first.tls["reused"], "first handshake is a full one")
        session = first.tls["session"]
        self.assertIsNotNone(session)
        for i in range(tries):
            # Several tries: with two workers some land on the other one.
            resp = https_get(m.tls_port, "/again%d" % i, ctx=ctx, session=session)
            self.assertEqual(resp.status, 200)
            self.assertTrue(resp.tls["reused"], "%s: connection %d resumed the session"
                            % (version.name, i + 1))
        return ctx, session

    def test_resumption_tls12_and_tls13(self):
        with self.edge() as m:
            full0 = metric(m, "meridian_tls_handshakes_total", listener="https", resumed="false")
            res0 = metric(m, "meridian_tls_handshakes_total", listener="https", resumed="true")
            for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                with self.subTest(version=version.name):
                    self.resumes(m, version)
            wait_for(lambda: metric(m, "meridian_tls_handshakes_total", listener="https",
                                    resumed="true") >= res0 + 12, timeout=5,
                     message="12 resumed handshakes counted")
            self.assertGreaterEqual(metric(m, "meridian_tls_handshakes_total", listener="https",
                                           resumed="false"), full0 + 2, "2 full handshakes")

    def test_tls13_resumed_connection_gets_a_fresh_ticket(self):
        # TLS 1.3 clients use a ticket once (RFC 8446 C.4): a client that
        # always resumes from its newest ticket (s_client -sess_in the
        # previous -sess_out) must keep resuming.
        d = tempfile.mkdtemp(dir=self.tmp)
        with self.edge() as m:
            kinds = []
            for i in range(4):
                args = ["-tls1_3", "-ign_eof", "-sess_out", os.path.join(d, "s%d" % i)]
                if i > 0:
                    args += ["-sess_in", os.path.join(d, "s%d" % (i - 1))]
                rc, out = s_client(m.tls_port, *args, sni=A, data=HTTP_CLOSE)
                self.assertTrue(s_client_ok(rc, out), out)
                kinds.append(re.search(r"^(New|Reused), TLSv1\.3", out, re.M).group(1))
            self.assertEqual(kinds, ["New", "Reused", "Reused", "Reused"])

    def test_s_client_reports_reused(self):
        with self.edge() as m:
            for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
                with self.subTest(version=version):
                    sess = os.path.join(self.tmp, "sess%s.pem" % flag)
                    rc, out = s_client(m.tls_port, flag, "-sess_out", sess, "-ign_eof", sni=A,
                                       data=HTTP_CLOSE)
                    self.assertTrue(s_client_ok(rc, out), out)
                    self.assertIn("New, %s" % version, out)
                    self.assertIn("HTTP/1.1 200", out, "the request was answered")
                    rc, out = s_client(m.tls_port, flag, "-sess_in", sess, "-ign_eof", sni=A,
                                       data=HTTP_CLOSE)
                    self.assertTrue(s_client_ok(rc, out), out)
                    self.assertIn("Reused, %s" % version, out)

    def test_resumption_survives_reload(self):
        with self.edge() as m:
            sessions = {v: self.resumes(m, v, tries=1)
                        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)}
            cfg = dict(m.config)
            cfg["regions"] = [region("r1", {"main": (self.main, 50)})]
            rewrite_config(m, cfg)
            resp = m.admin("POST", "/api/v1/reload")
            self.assertEqual(resp.status, 200, resp.body)
            for version, (ctx, session) in sessions.items():
                with self.subTest(version=version.name):
                    for i in range(4):
                        resp = https_get(m.tls_port, "/after-reload", ctx=ctx, session=session)
                        self.assertTrue(resp.tls["reused"],
                                        "session from before the reload resumed (try %d)" % i)

    def test_ticket_keys_rotate(self):
        # ticket_rotate_s 1: a ticket stays valid for two periods (1-2 s), so a
        # session resumes now and no longer does a few seconds later.
        with self.edge(tls={"ticket_rotate_s": 1}) as m:
            for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
                with self.subTest(version=version.name):
                    ctx, session = self.resumes(m, version, tries=1)
                    wait_for(lambda: not https_get(m.tls_port, "/rot", ctx=ctx,
                                                   session=session).tls["reused"],
                             timeout=8, interval=0.25,
                             message="ticket still accepted 8 s after, rotating every 1 s")


class OcspTest(TLSTestBase):

    def test_stapled_for_the_certificate_that_has_one(self):
        with self.edge(certs=("a", "b"), ocsp=("a",)) as m:
            for flag in ("-tls1_2", "-tls1_3"):
                with self.subTest(version=flag):
                    rc, out = s_client(m.tls_port, flag, "-status", sni=A)
                    self.assertTrue(s_client_ok(rc, out), out)
                    self.assertIn("OCSP Response Status: successful", out)
                    self.assertIn("Cert Status: good", out)
                    self.assertRegex(out, r"Serial Number: %s\b" % self.pki.serial("a"),
                                     "the response is about a.meridian.test's certificate")
                    rc, out = s_client(m.tls_port, flag, "-status", sni=B)
                    self.assertTrue(s_client_ok(rc, out), out)
                    self.assertIn("OCSP response: no response sent", out,
                                  "b.meridian.test has no OCSP response configured")
            rc, out = s_client(m.tls_port, "-status")  # no SNI: default is a
            self.assertIn("Cert Status: good", out)
            rc, out = s_client(m.tls_port, sni=A)      # not asked: nothing stapled
            self.assertTrue(s_client_ok(rc, out), out)
            self.assertNotIn("OCSP Response Status", out)


class ReloadTest(TLSTestBase):

    def test_new_files_for_new_connections_download_in_flight_completes(self):
        n = 48 << 20
        with self.edge(certs=("a", "b")) as m, TLSConn(m.tls_port, A) as idle:
            d = m.dir
            self.assertEqual(idle.request("GET", "/before").status, 200)
            done = {}

            def swap_certificate():
                # Mid-download: a.meridian.test gets a new certificate and key
                # (same file names) and the edge reloads on SIGHUP.
                for src, dst in ((self.pki.certs["a2"], "a.pem"),
                                 (self.pki.keys["a2"], "a.key")):
                    shutil.copyfile(src, os.path.join(d, dst + ".tmp"))
                    os.replace(os.path.join(d, dst + ".tmp"), os.path.join(d, dst))
                verdict = sighup_reload(m)
                self.assertTrue(verdict.startswith("reloaded"), verdict)
                wait_for(lambda: self.pki.which(served_der(m.tls_port, A)) == "a2", timeout=5,
                         message="new connections get the new certificate")
                for _ in range(6):
                    self.assertServes(m.tls_port, A, "a2", "after reload")
                self.assertServes(m.tls_port, None, "a2", "after reload, default")
                self.assertServes(m.tls_port, B, "b", "after reload, untouched name")
                rc, status, _, _, verbose = curl_https(m.tls_port, "/new", ca=self.pki.ca_cert)
                self.assertEqual((rc, status), (0, 200), verbose)
                done["swapped"] = True

            h = hashlib.sha256()
            got = [0]

            def sink(piece):
                h.update(piece)
                got[0] += len(piece)
                if got[0] >= (1 << 20) and not done:
                    swap_certificate()

            with TLSConn(m.tls_port, A, timeout=10) as dl:
                old_der = dl.sock.getpeercert(True)
                self.assertEqual(self.pki.which(old_der), "a")
                dl.send_request("GET", "/bytes?n=%d" % n)
                resp = dl.read_response(sink=sink)
                self.assertTrue(done.get("swapped"), "the reload happened mid-download")
                self.assertEqual(resp.status, 200)
                self.assertEqual(got[0], n, "download started before the reload completes")
                self.assertEqual(h.hexdigest(), pattern_sha256(n), "... with the right bytes")
                self.assertEqual(dl.request("GET", "/same-conn").status, 200,
                                 "the old connection keeps serving")
                self.assertEqual(dl.sock.getpeercert(True), old_der)
            self.assertEqual(idle.request("GET", "/idle-after").status, 200,
                             "an idle keep-alive TLS connection survives the reload")

    def test_config_change_via_admin_reload(self):
        with self.edge(certs=("a", "b")) as m:
            self.assertServes(m.tls_port, None, "a")
            cfg = json.loads(json.dumps(m.config))
            cfg["listeners"][1]["tls"]["certificates"] = [self.cert_entry("b"),
                                                          self.cert_entry("a2"),
                                                          self.cert_entry("wild")]
            rewrite_config(m, cfg)
            resp = m.admin("POST", "/api/v1/reload")
            self.assertEqual(resp.status, 200, resp.body)
            wait_for(lambda: self.pki.which(served_der(m.tls_port, None)) == "b", timeout=5,
                     message="new default certificate")
            self.assertServes(m.tls_port, A, "a2")
            self.assertServes(m.tls_port, "q.w.meridian.test", "wild")
            res = m.ctl("reload")
            self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
            self.assertServes(m.tls_port, A, "a2")


class BadCertificateTest(TLSTestBase):
    P = "listeners[1].tls.certificates"

    def test_bad_certificate_refused_everywhere_old_one_served(self):
        with self.edge(certs=("a", "b")) as m:
            good = json.loads(json.dumps(m.config))
            missing = os.path.join(m.dir, "missing.pem")

            def with_certs(first, second=None):
                cfg = json.loads(json.dumps(good))
                certs = cfg["listeners"][1]["tls"]["certificates"]
                certs[0] = first
                if second:
                    certs[1] = second
                return cfg

            cases = [
                ("expired", with_certs({"cert": "expired.pem", "key": "expired.key"}), None,
                 self.P + "[0].cert", ("expired", "2020-01-01")),
                ("key does not match", with_certs({"cert": "a.pem", "key": "wrong.key"}), None,
                 self.P + "[0].key", ("does not match", self.P + "[0].cert")),
                ("second entry's key", with_certs(self.cert_entry("a"),
                                                  {"cert": "b.pem", "key": "a.key"}), None,
                 self.P + "[1].key", ("does not match",)),
                ("unreadable cert", with_certs({"cert": "missing.pem", "key": "a.key"}), None,
                 self.P + "[0].cert", ("cannot read", missing)),
                ("unreadable key", with_certs({"cert": "a.pem", "key": "missing.key"}), None,
                 self.P + "[0].key", ("cannot read",)),
                ("expired file in place", good, "expired",
                 self.P + "[0].cert", ("expired",)),
            ]
            mark_a = self.pki.der("a")
            for label, cfg, in_place, path, words in cases:
                with self.subTest(case=label):
                    saved = {}
                    if in_place:
                        for ext in (".pem", ".key"):
                            p = os.path.join(m.dir, "a" + ext)
                            with open(p, "rb") as f:
                                saved[p] = f.read()
                            src = (self.pki.certs if ext == ".pem" else self.pki.keys)[in_place]
                            shutil.copyfile(src, p)
                    rewrite_config(m, cfg)
                    try:
                        rc, lines = self.check_config(m.config_path)
                        self.assertEqual(rc, 1, "meridian -t exit code: %r" % lines)
                        named = [l for l in lines if l.startswith(path)]
                        self.assertTrue(named, "meridian -t names %s: %r" % (path, lines))
                        for w in words:
                            self.assertTrue(any(w in l for l in named),
                                            "-t: %r in %r" % (w, named))

                        resp = m.admin("POST", "/api/v1/reload")
                        self.assertEqual(resp.status, 400, resp.body)
                        errors = resp.json().get("errors") or []
                        named = [e for e in errors if e.startswith(path)]
                        self.assertTrue(named, "admin reload names %s: %r" % (path, errors))
                        for w in words:
                            self.assertTrue(any(w in e for e in named),
                                            "admin: %r in %r" % (w, named))

                        verdict = sighup_reload(m)
                        self.assertTrue(verdict.startswith("reload refused"), verdict)
                        res = m.ctl("reload")
                        self.assertEqual(res.returncode, 1, "meridianctl reload: %s%s"
                                         % (res.stdout, res.stderr))

                        self.assertTrue(m.running())
                        self.assertEqual(served_der(m.tls_port, A), mark_a,
                                         "the old certificate is still served")
                        self.assertServes(m.tls_port, B, "b")
                        rc, status, _, _, verbose = curl_https(m.tls_port, "/still",
                                                               ca=self.pki.ca_cert)
                        self.assertEqual((rc, status), (0, 200), verbose)
                    finally:
                        for p, data in saved.items():
                            with open(p, "wb") as f:
                                f.write(data)
            rewrite_config(m, good)
            self.assertEqual(m.admin("POST", "/api/v1/reload").status, 200,
                             "the good file reloads again")

    def test_bad_certificate_at_start_refused(self):
        path, cfg = self.config()
        cfg["listeners"][1]["tls"]["certificates"][0] = {"cert": "expired.pem",
                                                         "key": "expired.key"}
        with open(path, "w") as f:
            json.dump(cfg, f)
        res = subprocess.run([MERIDIAN_BIN, "-c", path], capture_output=True, text=True,
                             timeout=TOOL_TIMEOUT, stdin=subprocess.DEVNULL)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn(self.P + "[0].cert", res.stdout + res.stderr)

    def test_other_tls_config_errors(self):
        cases = [
            ("TLS 1.1 minimum", {"min_version": "TLSv1.1"}, "listeners[1].tls.min_version"),
            ("unknown version", {"min_version": "TLSv9"}, "listeners[1].tls.min_version"),
            ("h2 in alpn", {"alpn": ["h2", "http/1.1"]}, "listeners[1].tls.alpn"),
            ("no certificates", {"certificates": []}, "listeners[1].tls.certificates"),
            ("unreadable OCSP file", {"certificates": [{"cert": "a.pem", "key": "a.key",
                                                        "ocsp": "none.der"}]},
             "listeners[1].tls.certificates[0].ocsp"),
        ]
        for label, tls, path in cases:
            with self.subTest(case=label):
                p, _ = self.config(tls=tls)
                rc, lines = self.check_config(p)
                self.assertEqual(rc, 1, "%s: %r" % (label, lines))
                self.assertTrue(any(l.startswith(path) for l in lines),
                                "%s: an error names %s: %r" % (label, path, lines))
        p, _ = self.config(tls={"min_version": "TLSv1.3", "alpn": ["http/1.1", "http/1.0"],
                                "session_tickets": False, "ticket_rotate_s": 600},
                           ocsp=("a",))
        rc, lines = self.check_config(p)
        self.assertEqual(rc, 0, "a valid TLS listener checks OK: %r" % lines)


class HandshakeFailureTest(TLSTestBase):

    def test_failures_counted_and_edge_keeps_serving(self):
        with self.edge() as m:
            name = "meridian_tls_handshake_failures_total"
            before = metric(m, name, listener="https")
            plain_before = metric(m, name, listener="http")
            attempts = [b"\x00garbage\xff\xfe not a client hello\r\n\r\n" * 4,
                        b"GET / HTTP/1.1\r\nHost: a.meridian.test\r\n\r\n"]
            for data in attempts:
                with RawConn(port=m.tls_port, timeout=5) as c:
                    c.send(data)
                    self.assertTrue(closed_soon(c.sock, 5.0),
                                    "connection closed after %r" % data[:20])
            rc, out = s_client(m.tls_port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", sni=A)
            self.assertFalse(s_client_ok(rc, out))
            wait_for(lambda: metric(m, name, listener="https") >= before + 3, timeout=5,
                     message="3 failed handshakes counted on listener https")
            self.assertEqual(metric(m, name, listener="http"), plain_before,
                             "nothing counted on the plain listener")
            self.assertTrue(m.running())
            rc, status, _, _, verbose = curl_https(m.tls_port, "/after", ca=self.pki.ca_cert)
            self.assertEqual((rc, status), (0, 200), "still serving HTTPS:\n" + verbose)


class RedirectHttpsTest(TLSTestBase):

    def test_plain_listener_redirects_to_https(self):
        for https_port in (None, 443):
            with self.subTest(https_port=https_port):
                http = {"redirect_https": True}
                tls_port = free_port()
                http["https_port"] = https_port or tls_port
                path, cfg = self.config(http=http)
                cfg["listeners"][1]["address"] = "127.0.0.1:%d" % tls_port
                with open(path, "w") as f:
                    json.dump(cfg, f)
                suffix = "" if https_port == 443 else ":%d" % tls_port
                with Edge(path) as m:
                    mark = self.origin.mark()
                    cases = [
                        ("GET", "/path?q=1", "a.meridian.test:%d" % m.port,
                         "https://a.meridian.test%s/path?q=1" % suffix),
                        ("GET", "/", "b.meridian.test", "https://b.meridian.test%s/" % suffix),
                        ("POST", "/form?x=%20y", "a.meridian.test:80",
                         "https://a.meridian.test%s/form?x=%%20y" % suffix),
                        ("HEAD", "/h", "[::1]:%d" % m.port, "https://[::1]%s/h" % suffix),
                    ]
                    for method, target, host, location in cases:
                        body = b"k=v" if method == "POST" else None
                        resp = request(m.port, method, target, headers=[("Host", host)],
                                       body=body, timeout=5)
                        self.assertEqual(resp.status, 308, "%s %s" % (method, target))
                        self.assertEqual(resp.reason, "Permanent Redirect")
                        self.assertEqual(resp.get("Location"), location)
                        self.assertIsNone(resp.get("X-Origin-Cluster"), "never proxied")
                    self.assertEqual(self.origin.requests(since=mark), [],
                                     "no redirected request reached the origin")
                    resp = https_get(m.tls_port, "/tls-proxied")
                    self.assertEqual(resp.status, 200, "the TLS listener proxies")


if __name__ == "__main__":
    unittest.main(verbosity=2)
