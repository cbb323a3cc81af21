"""tests/integration/routing_helpers.py: helpers shared by the routing tests
(test_routing_geo, test_routing_sessions, test_routing_health,
test_access_log). Not a test itself (tests/run.sh runs only test_*.py).

- where the GeoIP test databases are (TESTDATA, db());
- the client address, simulated with X-Forwarded-For from the trusted
  loopback peer (xff());
- the sticky cookie: reading Set-Cookie, and signing our own values with a
  key we wrote to session.keys (write_keys(), sign_cookie());
- the access log (AccessLog) and reloads that wait for meridian's verdict
  (reload()).
Stdlib only.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import time

from harness import MERIDIAN_BIN, free_port, request, wait_for

TESTDATA = os.environ.get("MERIDIAN_TESTDATA") or os.path.join(
    os.path.dirname(os.path.abspath(MERIDIAN_BIN)), "testdata")

# Networks of tools/mkmmdb.pl (both schemas).
IP = {
    "GB": "81.2.69.142",
    "US": "8.8.8.8",
    "DE": "5.9.1.1",
    "FR": "2.0.1.1",
    "JP": "1.0.16.1",
    "SG": "175.41.130.1",
    "BR": "200.147.1.1",
    "AU": "1.128.0.1",
    "ZA": "196.25.1.1",
    "IN": "117.192.0.1",
    "GB6": "2a02:c7f::1",
    "DE6": "2001:db8:1::5",
    "GB_MAPPED": "::ffff:81.2.69.142",
    "PRIVATE": "10.1.2.3",
}


def db(name):
    """Path of a test database ("geoip2.mmdb" or "flat.mmdb")."""
    path = os.path.join(TESTDATA, name)
    if not os.path.exists(path):
        raise RuntimeError("test database %s missing (set MERIDIAN_TESTDATA)" % path)
    return path


def addr():
    return "127.0.0.1:%d" % free_port()


def xff(ip, extra=None):
    """Headers making the client ip (the loopback peer is a trusted proxy)."""
    headers = [("X-Forwarded-For", ip)] if ip else []
    return headers + list(extra or [])


def get(m, path, ip=None, cookie=None, headers=None, method="GET", body=None):
    """One request through m from client ip, with an optional Cookie header."""
    hdrs = xff(ip)
    if cookie is not None:
        hdrs.append(("Cookie", cookie))
    hdrs += list(headers or [])
    return request(m.port, method, path, headers=hdrs, body=body, timeout=5)


# ------------------------------------------------------------------ cookies

def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def write_keys(directory, keys, name="session.keys"):
    """Writes DIR/session.keys from [(kid, secret bytes), ...], first signs."""
    with open(os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                      0o600), "w") as f:
        f.write("# test keys\n")
        for kid, secret in keys:
            f.write("%s:%s\n" % (kid, base64.b64encode(secret).decode()))


def sign_cookie(kid, secret, cluster, issued=None, expires=None):
    """A cookie value signed like meridian does (router/cookie.h)."""
    now = int(time.time())
    issued = now if issued is None else issued
    expires = issued + 3600 if expires is None else expires
    body = "v1.%s.%s.%d.%d" % (kid, b64url(cluster.encode()), issued, expires)
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return body + "." + b64url(mac)


def set_cookies(resp, name="MRD"):
    """The Set-Cookie header values of resp that set cookie name."""
    return [v for v in resp.get_all("Set-Cookie") if v.startswith(name + "=")]


def set_cookie(resp, name="MRD"):
    """(value, [attributes]) of the one Set-Cookie for name, or None."""
    values = set_cookies(resp, name)
    if not values:
        return None
    if len(values) > 1:
        raise AssertionError("several Set-Cookie for %s: %r" % (name, values))
    parts = [p.strip() for p in values[0].split(";")]
    return parts[0][len(name) + 1:], parts[1:]


def cookie_fields(value):
    """{'kid', 'cluster', 'issued', 'expires', 'mac'} of a cookie value."""
    parts = value.split(".")
    if len(parts) != 6 or parts[0] != "v1":
        raise AssertionError("cookie value %r is not v1.kid.cluster.issued.expires.mac" % value)
    return {"kid": parts[1], "cluster": b64url_decode(parts[2]).decode(),
            "issued": int(parts[3]), "expires": int(parts[4]), "mac": parts[5]}


def cookie_cluster(resp, name="MRD"):
    """The cluster named by resp's Set-Cookie, or None when there is none."""
    sc = set_cookie(resp, name)
    return cookie_fields(sc[0])["cluster"] if sc else None


# -------------------------------------------------------------- access log

class AccessLog:
    """The JSON-lines access log at path."""

    KEYS = ("time", "client", "method", "path", "status", "bytes_in", "bytes_out",
            "duration_ms", "decision", "region", "cluster", "endpoint", "country",
            "generation")

    def __init__(self, path):
        self.path = path

    def entries(self):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")[:-1]  # a last line without "\n" is still being written
        return [json.loads(line) for line in lines if line]

    def entry(self, path, timeout=5.0):
        """The one line for request path (wait_for it); fails if several."""
        found = wait_for(lambda: [e for e in self.entries() if e.get("path") == path],
                         timeout=timeout, message="access log line for %s" % path)
        if len(found) != 1:
            raise AssertionError("%d access log lines for %s: %r" % (len(found), path, found))
        return found[0]


def log_of(m):
    return AccessLog(m.config["access_log"])


# ------------------------------------------------------------------ reload

_RELOAD_RE = re.compile(r"(reloaded .*|reload refused.*)")


def reload(m, timeout=10.0):
    """SIGHUP m and wait for its verdict; returns the stderr line
    ('reloaded PATH: generation N' or 'reload refused: ...')."""
    before = len(_RELOAD_RE.findall(m.stderr_text()))
    m.reload()
    lines = wait_for(lambda: (lambda f: f if len(f) > before else None)(
        _RELOAD_RE.findall(m.stderr_text())), timeout=timeout,
        message="meridian answered SIGHUP")
    return lines[before]


def rewrite_config(m, config):
    """Writes config (a dict) over m's config file, atomically."""
    tmp = m.config_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2)
    os.replace(tmp, m.config_path)
