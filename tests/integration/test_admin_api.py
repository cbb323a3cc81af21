"""tests/integration/test_admin_api.py: meridian's admin API, spoken to
directly over HTTP (docs/admin-api.md), against a real meridian and real
origins. meridianctl is covered by test_meridianctl.py; this file checks the
server's answers and behaviour:

- AuthTest: the bearer token on every call but /healthz (401 without it or
  with a wrong one, and nothing changes); the edge refuses to start with a
  non-loopback admin address and no token; GET / is self-contained HTML.
- BrowserGuardTest: changes need Content-Type: application/json (415); a
  foreign Origin, Sec-Fetch-Site or Host is 403 (/healthz answers any
  Host); the page opens by a link but never in a frame; duplicate JSON keys are 400; a head past 16 KiB is refused and the
  API stays up; none of it changes anything.
- MetricsTokenTest: admin.metrics_token_file reads GET /metrics only.
- AdminReloadTest: a reload that drops token_file or moves admin.address
  warns and keeps the running admin settings (through later changes and
  undo too); a rotated token file applies, a short one is refused.
- StatusTest: GET /api/v1/status: its shape, the cluster states
  (active/draining/drained/down), drain mode and deadline, and traffic
  counters that move with real requests (requests, new sessions, sticky hits,
  active connections, per endpoint too).
- ChangeTest: drain/undrain/weight/reload answer the new generation; bad
  reloads are 400 with errors naming JSON paths; unknown cluster 404,
  malformed bodies 400, wrong methods 405 (with Allow), none changing anything.
- ExplainTest: location, candidate regions with their rule, per-cluster
  eligibility and skip reason, the cookie verdict, the decision.
- GuardrailTest: 409 with a "stranded" list, "force", whole-region drains,
  dry runs and their new-session shares.
- MetricsTest: Prometheus text format 0.0.4, naming conventions, and the
  metrics of the issue moving with traffic and changes.
- HealthzShutdownTest: /healthz 503 once SIGTERM has begun while a download
  still runs; the download completes; exit 0.

Standalone unittest script; stdlib only; every wait bounded.
"""

import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (MERIDIAN_BIN, AdminStatus, IncompleteResponse, Meridian, Origin,  # noqa: E402
                     OriginTestCase, RawConn, addr, all_clusters, free_port, iso8601,
                     pattern_sha256, region, request, wait_for, write_config)
from routing_helpers import IP, db, get, set_cookie, sign_cookie, write_keys  # noqa: E402

KEY = ("k1", bytes(range(7, 39)))
CLUSTERS = ("eu-west-a", "eu-west-b", "us-east-a")


# ------------------------------------------------------------------ helpers

def edge_overrides(eps, extra_regions=(), health=None, routing=None):
    """eu-west {eu-west-a 50, eu-west-b 50}, us-east {us-east-a 100}.
    GB -> eu-west, us-east; US -> us-east only; EU continent -> eu-west,
    us-east; default -> eu-west, us-east."""
    cfg = {
        "geoip": {"database": db("geoip2.mmdb")},
        "health": dict({"interval_ms": 100, "timeout_ms": 80, "rise": 1, "fall": 1},
                       **(health or {})),
        "regions": [
            region("eu-west", {"eu-west-a": (eps["eu-west-a"], 50),
                               "eu-west-b": (eps["eu-west-b"], 50)}, 53.35, -6.26),
            region("us-east", {"us-east-a": (eps["us-east-a"], 100)}, 39.04, -77.49),
        ] + list(extra_regions),
        "routing": routing or {"countries": {"GB": ["eu-west", "us-east"], "US": ["us-east"]},
                               "continents": {"EU": ["eu-west", "us-east"]},
                               "proximity": False,
                               "default": ["eu-west", "us-east"]},
    }
    return cfg


def ctl_state(st):
    """What a refused call must not change: generation and every cluster's
    state, weight and drain."""
    return (st["generation"],
            {n: (c["state"], c["weight"], json.dumps(c["drain"], sort_keys=True),
                 c["takes_new_sessions"], c["keeps_sessions"])
             for n, c in all_clusters(st).items()})


class EdgeCase(AdminStatus, OriginTestCase):
    """One Origin for the class (eu-west-a, eu-west-b, us-east-a); a fresh
    meridian per test via self.edge()."""

    CLUSTERS = CLUSTERS
    ENDPOINTS = {name: 1 for name in CLUSTERS}
    TMP_PREFIX = "mr-admin-"

    @classmethod
    def tearDownClass(cls):
        shared = cls.__dict__.get("_shared")
        if shared is not None:
            shared.stop()
            cls._shared = None
        super().tearDownClass()
        if shared is not None and shared.sanitizer_report():
            raise AssertionError("sanitizer report:\n" + shared.sanitizer_report())

    def edge(self, overrides=None, wait=CLUSTERS, **kw):
        """A fresh meridian for this test (stopped at its end)."""
        m = self.start_edge(overrides, wait, **kw)
        self.addCleanup(self.check_stopped, m)
        return m

    def shared_edge(self):
        """One meridian for the class's tests that change nothing (or only
        look at counter deltas); started on first use."""
        m = type(self).__dict__.get("_shared")
        if m is None or not m.running():
            m = self.start_edge()
            type(self)._shared = m
        self.wait_healthy(m)
        return m

    def start_edge(self, overrides=None, wait=CLUSTERS, **kw):
        cfg = edge_overrides(self.eps, **kw)
        if overrides:
            cfg.update(overrides)
        d = tempfile.mkdtemp(dir=self.tmp)
        path, _ = write_config(d, cfg)
        write_keys(d, [KEY])
        m = Meridian(path)
        m.start()
        try:
            self.wait_healthy(m, wait)
        except AssertionError:
            m.stop()
            raise
        return m

    def check_stopped(self, m):
        m.stop()
        report = m.sanitizer_report()
        if report:
            self.fail("sanitizer report:\n" + report)

    def change(self, m, method, path, body=None):
        """A change that must succeed: 200, generation moves by one, the
        status shows the new generation. Returns the answer."""
        before = self.gen(m)
        resp = m.admin(method, path, body)
        self.assertEqual(resp.status, 200, "%s %s %r -> %d %r"
                         % (method, path, body, resp.status, resp.body[:400]))
        ans = resp.json()
        self.assertEqual(ans.get("previous_generation"), before, "previous_generation: %r" % ans)
        self.assertEqual(ans.get("generation"), before + 1, "new generation: %r" % ans)
        self.assertIsInstance(ans.get("message"), str, "a message: %r" % ans)
        self.assertEqual(self.gen(m), before + 1, "status shows the new generation")
        return ans

    def history_len(self, m):
        resp = m.admin("GET", "/api/v1/history")
        self.assertEqual(resp.status, 200)
        return len(resp.json()["changes"])

    def landings(self, m, n=10, ip=IP["GB"]):
        seen = []
        for i in range(n):
            resp = get(m, "/land%d" % i, ip)
            self.assertEqual(resp.status, 200)
            seen.append(resp.get("X-Origin-Cluster"))
        return seen

    def cookie(self, cluster, **kw):
        return "MRD=" + sign_cookie(KEY[0], KEY[1], cluster, **kw)


# --------------------------------------------------------------------- auth

class AuthTest(EdgeCase):

    CALLS = [
        ("GET", "/api/v1/status", None),
        ("GET", "/metrics", None),
        ("GET", "/api/v1/explain?ip=81.2.69.142", None),
        ("GET", "/api/v1/history", None),
        ("POST", "/api/v1/clusters/eu-west-a/drain", {"mode": "hard", "force": True}),
        ("POST", "/api/v1/clusters/eu-west-a/undrain", {}),
        ("PUT", "/api/v1/clusters/eu-west-a/weight", {"weight": 3, "force": True}),
        ("POST", "/api/v1/reload", None),
        ("POST", "/api/v1/undo", None),
    ]

    def test_every_call_needs_the_token(self):
        m = self.shared_edge()
        before = ctl_state(self.status(m))
        n_hist = self.history_len(m)
        for method, path, body in self.CALLS:
            for label, token, headers in (
                    ("no token", False, None),
                    ("wrong token", "x" + m.token, None),
                    ("token prefix", m.token[:-1], None),
                    ("basic scheme", False, [("Authorization", "Basic " + m.token)]),
                    ("empty bearer", False, [("Authorization", "Bearer ")])):
                with self.subTest(call=(method, path), case=label):
                    resp = m.admin(method, path, body, token=token, headers=headers)
                    self.assertEqual(resp.status, 401, "%s %s with %s: %d"
                                     % (method, path, label, resp.status))
                    try:
                        err = resp.json()
                    except ValueError:
                        self.fail("401 body is not JSON: %r" % resp.body[:200])
                    self.assertIsInstance(err.get("error"), str, "{\"error\": ...}: %r" % err)
        self.assertEqual(ctl_state(self.status(m)), before, "refused calls changed nothing")
        self.assertEqual(self.history_len(m), n_hist, "nothing audited")
        resp = m.admin("GET", "/api/v1/status", token=m.token)
        self.assertEqual(resp.status, 200, "the right token works")

    def test_dashboard_shell_holds_no_data(self):
        # docs/admin-api.md: the page shell GET / is served without a token
        # (a browser cannot send one when opening a URL) and holds no data;
        # everything it shows comes from API calls that need the token.
        m = self.shared_edge()
        for label, token in (("no token", False), ("wrong token", "x" + m.token)):
            with self.subTest(case=label):
                resp = m.admin("GET", "/", token=token)
                self.assertEqual(resp.status, 200)
                for secret in (m.token, "eu-west-a", "127.0.0.1:"):
                    self.assertNotIn(secret.encode(), resp.body)
                self.assertEqual(m.admin("GET", "/api/v1/status", token=token).status, 401)

    def test_healthz_needs_no_token(self):
        m = self.shared_edge()
        for token in (False, "wrong"):
            resp = m.admin("GET", "/healthz", token=token)
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.body.strip(), b"ok")

    def test_unknown_path_404(self):
        m = self.shared_edge()
        for path in ("/api/v1/nope", "/api/v2/status", "/api/v1/clusters/eu-west-a/frob",
                     "/metricsx"):
            with self.subTest(path=path):
                resp = m.admin("GET", path)
                self.assertEqual(resp.status, 404, "%s: %d" % (path, resp.status))
                self.assertIn("error", resp.json())

    def test_dashboard_is_self_contained_html(self):
        m = self.shared_edge()
        resp = m.admin("GET", "/")
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.get("Content-Type", "").startswith("text/html"), resp.headers)
        html = resp.text
        self.assertIn("<html", html.lower())
        external = re.findall(r"""(?:src|href|action)\s*=\s*["']?\s*((?:https?:)?//[^"'\s>]+)"""
                              r"""|url\(\s*["']?((?:https?:)?//[^"')\s]+)"""
                              r"""|@import\s+["']((?:https?:)?//[^"']+)""", html, re.I)
        self.assertEqual(external, [], "no external resources referenced")
        fetches = re.findall(r"""(?:fetch|open|WebSocket|EventSource)\s*\("""
                             r"""\s*[^)]*?["'`](?:https?|wss?):""", html)
        self.assertEqual(fetches, [], "no requests to other origins from scripts")

    def _run_refused(self, path):
        proc = subprocess.run([MERIDIAN_BIN, "-c", path], capture_output=True, text=True,
                              timeout=10, stdin=subprocess.DEVNULL)
        return proc

    def test_non_loopback_admin_without_token_refused(self):
        for address in ("0.0.0.0:%d" % free_port(), "[::]:%d" % free_port()):
            with self.subTest(address=address):
                d = tempfile.mkdtemp(dir=self.tmp)
                path, cfg = write_config(d, edge_overrides(self.eps))
                cfg["admin"] = {"address": address}
                with open(path, "w") as f:
                    json.dump(cfg, f)
                try:
                    proc = self._run_refused(path)
                except subprocess.TimeoutExpired:
                    self.fail("meridian started (still running after 10 s) with admin on %s "
                              "and no token" % address)
                self.assertNotEqual(proc.returncode, 0, "refuses to start:\n" + proc.stderr)
                self.assertIn("admin.token_file", proc.stdout + proc.stderr,
                              "the message names admin.token_file")
                res = subprocess.run([MERIDIAN_BIN, "-t", "-c", path], capture_output=True,
                                     text=True, timeout=10)
                self.assertNotEqual(res.returncode, 0, "meridian -t reports it too")
                self.assertIn("admin.token_file", res.stdout + res.stderr)

    def test_non_loopback_admin_with_token_starts(self):
        d = tempfile.mkdtemp(dir=self.tmp)
        port = free_port()
        path, cfg = write_config(d, dict(edge_overrides(self.eps),
                                         admin={"address": "0.0.0.0:%d" % port,
                                                "token_file": "admin.token"}))
        m = Meridian(path)
        m.admin_host = "127.0.0.1"
        m.start()
        self.addCleanup(self.check_stopped, m)
        wait_for(lambda: m.admin("GET", "/healthz").status == 200, timeout=5)
        self.assertEqual(m.admin("GET", "/api/v1/status", token=False).status, 401)
        self.assertEqual(m.admin("GET", "/api/v1/status").status, 200)


# ------------------------------------------------- web pages, Host, limits

class BrowserGuardTest(EdgeCase):
    """A web page in the operator's browser cannot drive the admin API: a
    change needs Content-Type: application/json (a form or a text/plain
    fetch cannot send it without a preflight), a foreign Origin or
    Sec-Fetch-Site is refused, and so is a Host that is not the admin
    address (DNS rebinding). Every refusal changes nothing."""

    DRAIN = "/api/v1/clusters/eu-west-a/drain"
    CHANGES = [
        ("POST", DRAIN, {"mode": "hard", "force": True}),
        ("POST", "/api/v1/clusters/eu-west-a/undrain", {}),
        ("PUT", "/api/v1/clusters/eu-west-a/weight", {"weight": 3, "force": True}),
        ("POST", "/api/v1/reload", None),
        ("POST", "/api/v1/undo", None),
    ]

    def tokenless_edge(self):
        """Loopback without a token: the case a web page could exploit."""
        d = tempfile.mkdtemp(dir=self.tmp)
        path, cfg = write_config(d, edge_overrides(self.eps))
        del cfg["admin"]["token_file"]
        with open(path, "w") as f:
            json.dump(cfg, f)
        write_keys(d, [KEY])
        m = Meridian(path)
        m.start()
        self.addCleanup(self.check_stopped, m)
        self.wait_healthy(m)
        self.assertIsNone(m.token)
        return m

    def assert_refused(self, m, status, before, n_hist, **kw):
        for method, path, body in self.CHANGES:
            with self.subTest(call=(method, path), **{k: str(v) for k, v in kw.items()}):
                raw = json.dumps(body).encode() if body is not None else None
                resp = m.admin(method, path, raw, **kw)
                self.assertEqual(resp.status, status, "%s %s: %d %r"
                                 % (method, path, resp.status, resp.body[:200]))
                self.assertIsInstance(resp.json().get("error"), str, resp.body[:200])
        self.assertEqual(ctl_state(self.status(m)), before, "nothing changed")
        self.assertEqual(self.history_len(m), n_hist, "nothing audited")

    def test_change_needs_json_content_type(self):
        m = self.tokenless_edge()
        self.change(m, "PUT", "/api/v1/clusters/us-east-a/weight", {"weight": 70})
        before, n_hist = ctl_state(self.status(m)), self.history_len(m)
        for ctype in (None, "text/plain", "text/plain;charset=UTF-8",
                      "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                      "application/jsonp", "text/json", "application/json-seq", ""):
            self.assert_refused(m, 415, before, n_hist, content_type=ctype)
        for ctype in ("application/json; charset=utf-8", "Application/JSON",
                      "application/json ;x=1"):
            with self.subTest(accepted=ctype):
                resp = m.admin("POST", self.DRAIN, {"mode": "hard", "force": True},
                               content_type=ctype)
                self.assertEqual(resp.status, 200, "%s: %r" % (ctype, resp.body[:200]))
                self.assertEqual(self.cluster(m, "eu-west-a")["state"], "drained")
                resp = m.admin("POST", "/api/v1/undo", content_type=ctype)
                self.assertEqual(resp.status, 200, "%s: %r" % (ctype, resp.body[:200]))
                self.assertEqual(self.cluster(m, "eu-west-a")["state"], "active")

    def test_foreign_origin_refused(self):
        m = self.tokenless_edge()
        port = m.admin_port
        before, n_hist = ctl_state(self.status(m)), self.history_len(m)
        for origin in ("http://evil.example", "null", "http://127.0.0.1:%d" % (port + 1),
                       "https://127.0.0.1:%d" % port, "http://localhost:%d" % port,
                       "http://127.0.0.1:%d.evil.example" % port, "http://127.0.0.1"):
            self.assert_refused(m, 403, before, n_hist, headers=[("Origin", origin)])
            with self.subTest(read=origin):
                resp = m.admin("GET", "/api/v1/status", headers=[("Origin", origin)])
                self.assertEqual(resp.status, 403, origin)
        for site in ("cross-site", "same-site"):
            self.assert_refused(m, 403, before, n_hist, headers=[("Sec-Fetch-Site", site)])
        # The page's own calls: same origin.
        same = [("Origin", "http://127.0.0.1:%d" % port), ("Sec-Fetch-Site", "same-origin")]
        self.change(m, "POST", self.DRAIN, {"mode": "soft"})
        resp = m.admin("POST", "/api/v1/undo", headers=same)
        self.assertEqual(resp.status, 200, resp.body[:200])
        self.assertEqual(m.admin("GET", "/api/v1/status", headers=same).status, 200)
        self.assertEqual(m.admin("GET", "/api/v1/status",
                                 headers=[("Sec-Fetch-Site", "none")]).status, 200)

    def test_foreign_host_refused(self):
        m = self.tokenless_edge()
        port = m.admin_port
        before, n_hist = ctl_state(self.status(m)), self.history_len(m)
        for host in ("evil.example:%d" % port, "evil.example", "127.0.0.2:%d" % port,
                     "127.0.0.1:%d" % (port + 1), "127.0.0.1", "[::1]:%d" % port,
                     "127.0.0.1:%d@evil.example" % port, "localhost.evil.example:%d" % port):
            self.assert_refused(m, 403, before, n_hist, headers=[("Host", host)])
            for path in ("/", "/api/v1/status", "/metrics", "/api/v1/history"):
                with self.subTest(host=host, path=path):
                    resp = m.admin("GET", path, headers=[("Host", host)])
                    self.assertEqual(resp.status, 403, "%s %s: %d" % (host, path, resp.status))
            with self.subTest(host=host, path="/healthz"):
                # A load balancer's probe may name any host.
                self.assertEqual(m.admin("GET", "/healthz", headers=[("Host", host)]).status, 200)
        for host in ("127.0.0.1:%d" % port, "localhost:%d" % port, "LocalHost:%d" % port):
            with self.subTest(accepted=host):
                self.assertEqual(m.admin("GET", "/api/v1/status",
                                         headers=[("Host", host)]).status, 200)
        # With a token the same checks hold, before the token is looked at.
        t = self.shared_edge()
        resp = t.admin("GET", "/api/v1/status", headers=[("Host", "evil.example:%d" % t.admin_port)])
        self.assertEqual(resp.status, 403)

    def test_page_opens_by_link_never_in_a_frame(self):
        m = self.tokenless_edge()
        link = [("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Mode", "navigate"),
                ("Sec-Fetch-Dest", "document")]
        resp = m.admin("GET", "/", headers=link)
        self.assertEqual(resp.status, 200, "a link from another site opens the page")
        self.assertEqual(resp.get("X-Frame-Options"), "DENY")
        self.assertIn("frame-ancestors 'none'", resp.get("Content-Security-Policy") or "")
        frame = [("Sec-Fetch-Site", "cross-site"), ("Sec-Fetch-Mode", "navigate"),
                 ("Sec-Fetch-Dest", "iframe")]
        self.assertEqual(m.admin("GET", "/", headers=frame).status, 403, "never in a frame")
        self.assertEqual(m.admin("GET", "/api/v1/status", headers=link).status, 403,
                         "only the page opens by a link")

    def test_duplicate_keys_refused(self):
        m = self.edge()
        before, n_hist = ctl_state(self.status(m)), self.history_len(m)
        for method, path, body in (
                ("POST", self.DRAIN, b'{"mode": "soft", "mode": "hard", "force": true}'),
                ("POST", self.DRAIN, b'{"force": false, "force": true, "mode": "hard"}'),
                ("PUT", "/api/v1/clusters/eu-west-a/weight", b'{"weight": 5, "weight": 0}'),
                ("POST", "/api/v1/clusters/eu-west-a/undrain", b'{"dry_run": true, "dry_run": false}')):
            with self.subTest(body=body):
                resp = m.admin(method, path, body)
                self.assertEqual(resp.status, 400, resp.body[:200])
                self.assertIn("duplicate", resp.json()["error"])
        self.assertEqual(ctl_state(self.status(m)), before, "nothing changed")
        self.assertEqual(self.history_len(m), n_hist, "nothing audited")

    def test_oversized_head_refused(self):
        m = self.shared_edge()
        for headers in ([("X-Big", "a" * 32768)],
                        [("X-H%d" % i, "b" * 200) for i in range(200)]):
            with self.subTest(size=sum(len(k) + len(v) for k, v in headers)):
                try:
                    resp = m.admin("GET", "/api/v1/status", headers=headers)
                    self.assertEqual(resp.status, 400, "a head past 16 KiB is refused")
                except (IncompleteResponse, ConnectionError):
                    pass  # or closed: either way not served
                self.assertEqual(m.admin("GET", "/api/v1/status").status, 200, "still up")
        resp = m.admin("GET", "/api/v1/status", headers=[("X-Fits", "c" * 8000)])
        self.assertEqual(resp.status, 200, "8 KiB of headers are fine")


class MetricsTokenTest(EdgeCase):
    """admin.metrics_token_file: a token that reads GET /metrics and nothing
    else; the main token still reads /metrics too."""

    def test_metrics_token_reads_metrics_only(self):
        d = tempfile.mkdtemp(dir=self.tmp)
        mtoken = "metrics-" + "m" * 24
        with open(os.open(os.path.join(d, "metrics.token"), os.O_WRONLY | os.O_CREAT, 0o600),
                  "w") as f:
            f.write(mtoken + "\n")
        path, _ = write_config(d, dict(edge_overrides(self.eps), admin={
            "address": "127.0.0.1:%d" % free_port(), "token_file": "admin.token",
            "metrics_token_file": "metrics.token"}))
        write_keys(d, [KEY])
        m = Meridian(path)
        m.start()
        self.addCleanup(self.check_stopped, m)
        self.wait_healthy(m)
        resp = m.admin("GET", "/metrics", token=mtoken)
        self.assertEqual(resp.status, 200, resp.body[:200])
        self.assertNotIn("unknown key", m.stderr_text())
        self.assertIn(b"meridian_", resp.body)
        self.assertEqual(m.admin("GET", "/metrics").status, 200, "the main token too")
        self.assertEqual(m.admin("GET", "/metrics", token=False).status, 401)
        self.assertEqual(m.admin("GET", "/metrics", token=mtoken[:-1]).status, 401)
        before, n_hist = ctl_state(self.status(m)), self.history_len(m)
        for method, path, body in AuthTest.CALLS:
            if path == "/metrics":
                continue
            with self.subTest(call=(method, path)):
                self.assertEqual(m.admin(method, path, body, token=mtoken).status, 401)
        for method in ("POST", "PUT", "DELETE"):
            with self.subTest(method=method):
                self.assertNotEqual(m.admin(method, "/metrics", {}, token=mtoken).status, 200)
        self.assertEqual(ctl_state(self.status(m)), before, "nothing changed")
        self.assertEqual(self.history_len(m), n_hist)


class AdminReloadTest(EdgeCase):
    """admin.address, token_file and metrics_token_file take effect at
    restart: a reload that changes them warns and the running admin
    settings stay, so no reload opens the API. The token file's content is
    re-read (rotation) and must still be a valid token."""

    def reload_with(self, m, mutate):
        with open(m.config_path) as f:
            cfg = json.load(f)
        mutate(cfg)
        with open(m.config_path, "w") as f:
            json.dump(cfg, f)
        return m.admin("POST", "/api/v1/reload")

    def test_reload_cannot_drop_the_token(self):
        m = self.edge()
        token = m.token
        resp = self.reload_with(m, lambda c: c["admin"].pop("token_file"))
        self.assertEqual(resp.status, 200, resp.body[:300])
        self.assertEqual(m.admin("GET", "/api/v1/status", token=False).status, 401,
                         "still needs the token after the reload")
        self.assertIn("admin.token_file: a change takes effect at restart",
                      resp.json()["warnings"])
        self.assertEqual(m.admin("POST", "/api/v1/clusters/eu-west-a/drain",
                                 {"mode": "hard", "force": True}, token=False).status, 401)
        # A change rebuilds the configuration from the reloaded text: the
        # running admin settings stay through it too.
        self.change(m, "PUT", "/api/v1/clusters/us-east-a/weight", {"weight": 40})
        self.assertEqual(m.admin("GET", "/api/v1/status", token=False).status, 401)
        self.assertEqual(m.admin("GET", "/api/v1/status", token=token).status, 200)
        resp = m.admin("POST", "/api/v1/undo")  # undo the weight
        self.assertEqual(resp.status, 200)
        resp = m.admin("POST", "/api/v1/undo")  # undo the reload
        self.assertEqual(resp.status, 200, resp.body[:300])
        self.assertEqual(m.admin("GET", "/api/v1/status", token=False).status, 401)
        self.assertIn("admin.token_file: a change takes effect at restart", m.stderr_text())

    def test_reload_cannot_move_the_address(self):
        m = self.edge()
        new_port = free_port()
        resp = self.reload_with(m, lambda c: c["admin"].update(
            {"address": "127.0.0.1:%d" % new_port}))
        self.assertEqual(resp.status, 200, resp.body[:300])
        self.assertIn("admin.address: a change takes effect at restart", resp.json()["warnings"])
        self.assertEqual(m.admin("GET", "/api/v1/status").status, 200, "the old address serves")
        with self.assertRaises(OSError, msg="nothing listens on the new address"):
            request(new_port, "GET", "/healthz", host="127.0.0.1")

    def test_token_rotation_and_short_token(self):
        m = self.edge()
        old = m.token
        token_path = os.path.join(m.dir, "admin.token")
        new = "rotated-" + "r" * 24
        with open(token_path, "w") as f:
            f.write(new + "\n")
        resp = m.admin("POST", "/api/v1/reload")
        self.assertEqual(resp.status, 200, resp.body[:300])
        m.token = new
        self.assertEqual(m.admin("GET", "/api/v1/status").status, 200, "the new token works")
        self.assertEqual(m.admin("GET", "/api/v1/status", token=old).status, 401)
        before = ctl_state(self.status(m))
        with open(token_path, "w") as f:
            f.write("short-token\n")
        resp = m.admin("POST", "/api/v1/reload")
        self.assertEqual(resp.status, 400, resp.body[:300])
        self.assertTrue(any(e.startswith("admin.token_file: ") and "at least 16" in e
                            for e in resp.json()["errors"]), resp.json())
        self.assertEqual(m.admin("GET", "/api/v1/status", token="short-token").status, 401)
        self.assertEqual(ctl_state(self.status(m)), before, "the running token stays")


# ------------------------------------------------------------------- status

class StatusTest(EdgeCase):

    def test_shape(self):
        m = self.shared_edge()
        st = self.status(m)
        self.assertIsInstance(st["generation"], int)
        self.assertEqual(st["config"], os.path.abspath(m.config_path))
        self.assertTrue(iso8601(st["started"]), st["started"])
        self.assertEqual([r["name"] for r in st["regions"]], ["eu-west", "us-east"],
                         "every region, in configuration order")
        eu = st["regions"][0]
        self.assertEqual((eu["lat"], eu["lon"]), (53.35, -6.26))
        self.assertEqual([c["name"] for c in eu["clusters"]], ["eu-west-a", "eu-west-b"])
        for name, c in all_clusters(st).items():
            with self.subTest(cluster=name):
                self.assertEqual(c["state"], "active")
                self.assertIs(c["healthy"], True)
                self.assertEqual((c["endpoints_up"], c["endpoints_total"]), (1, 1))
                self.assertEqual(c["weight"], c["configured_weight"])
                self.assertIsNone(c["drain"])
                self.assertIs(c["takes_new_sessions"], True)
                self.assertIs(c["keeps_sessions"], True)
                for k in ("requests", "active_connections", "new_sessions", "sticky_hits"):
                    self.assertIsInstance(c["traffic"][k], int, "traffic.%s" % k)
                self.assertEqual(len(c["endpoints"]), 1)
                ep = c["endpoints"][0]
                self.assertEqual(ep["address"], self.eps[name][0])
                self.assertEqual(ep["health"], "up")
                self.assertIn("last_check", ep)
                for k in ("requests", "active_connections"):
                    self.assertIsInstance(ep["traffic"][k], int, "endpoint traffic.%s" % k)
        self.assertEqual(all_clusters(st)["us-east-a"]["weight"], 100)

    def test_counters_move_with_traffic(self):
        m = self.shared_edge()
        before = all_clusters(self.status(m))
        cookies = {}
        for i in range(6):
            resp = get(m, "/c%d" % i, IP["GB"])
            self.assertEqual(resp.status, 200)
            cookies[resp.get("X-Origin-Cluster")] = set_cookie(resp)[0]
        first = sorted(cookies)[0]
        for i in range(4):
            resp = get(m, "/s%d" % i, IP["GB"], cookie="MRD=" + cookies[first])
            self.assertEqual(resp.get("X-Origin-Cluster"), first, "cookie replay is sticky")
        for i in range(2):
            self.assertEqual(get(m, "/u%d" % i, IP["US"]).get("X-Origin-Cluster"), "us-east-a")

        def settled():
            now = all_clusters(self.status(m))
            d = {n: {k: now[n]["traffic"][k] - before[n]["traffic"][k]
                     for k in ("requests", "new_sessions", "sticky_hits")} for n in now}
            return (now, d) if sum(x["requests"] for x in d.values()) >= 12 else None
        now, d = wait_for(settled, timeout=3, message="12 requests counted in status")
        self.assertEqual(sum(x["requests"] for x in d.values()), 12, d)
        self.assertEqual(d["eu-west-a"]["new_sessions"] + d["eu-west-b"]["new_sessions"], 6, d)
        self.assertEqual(d["us-east-a"]["new_sessions"], 2, d)
        self.assertEqual(d[first]["sticky_hits"], 4, "sticky_hits counts the replays: %r" % d)
        other = [n for n in ("eu-west-a", "eu-west-b") if n != first]
        for n in other + ["us-east-a"]:
            self.assertEqual(d[n]["sticky_hits"], 0, d)
        for n, c in now.items():
            ep_total = sum(e["traffic"]["requests"] for e in c["endpoints"])
            self.assertEqual(ep_total, c["traffic"]["requests"],
                             "%s: endpoint requests add up to the cluster's" % n)

    def test_active_connections_during_download(self):
        m = self.shared_edge()
        with RawConn(port=m.port, timeout=8) as c:
            c.send_request("GET", "/slow?n=10000&every_ms=50&step=1000",
                           headers=[("X-Forwarded-For", IP["US"]),
                                    ("Cookie", self.cookie("us-east-a"))])
            head = c.read_head()
            self.assertEqual(head.status, 200)
            st = self.status(m)
            us = all_clusters(st)["us-east-a"]
            self.assertGreaterEqual(us["traffic"]["active_connections"], 1,
                                    "the download is counted while it runs")
            self.assertGreaterEqual(us["endpoints"][0]["traffic"]["active_connections"], 1)
            self.assertEqual(all_clusters(st)["eu-west-a"]["traffic"]["active_connections"], 0)
            resp = c.read_body(head)
            self.assertEqual(resp.length, 10000)
        wait_for(lambda: self.cluster(m, "us-east-a")["traffic"]["active_connections"] == 0,
                 timeout=3, message="active_connections back to 0 after the download")

    def test_states_and_drain_fields(self):
        m = self.edge()
        self.change(m, "POST", "/api/v1/clusters/eu-west-a/drain", {"mode": "soft"})
        c = self.cluster(m, "eu-west-a")
        self.assertEqual(c["state"], "draining")
        self.assertEqual(c["drain"]["mode"], "soft")
        self.assertIsNone(c["drain"].get("deadline"), "soft without deadline: %r" % c["drain"])
        self.assertIsNone(c["drain"].get("deadline_s"))
        self.assertEqual((c["takes_new_sessions"], c["keeps_sessions"]), (False, True))

        ex = m.admin("GET", "/api/v1/explain?ip=%s&cookie=%s"
                     % (IP["GB"], sign_cookie(KEY[0], KEY[1], "eu-west-a"))).json()
        self.assertEqual(ex["decision"], "sticky", "a soft drain keeps its sessions: %r" % ex)
        self.change(m, "POST", "/api/v1/clusters/eu-west-b/drain",
                    {"mode": "soft", "deadline_s": 1})
        c = self.cluster(m, "eu-west-b")
        self.assertEqual(c["state"], "draining")
        self.assertTrue(isinstance(c["drain"]["deadline"], str) and iso8601(c["drain"]["deadline"]),
                        "deadline as ISO8601: %r" % c["drain"])
        # Seconds left; the deadline may be rounded up to a whole second.
        self.assertIn(c["drain"]["deadline_s"], (0, 1, 2), "seconds left: %r" % c["drain"])
        self.assertEqual((c["takes_new_sessions"], c["keeps_sessions"]), (False, True))
        wait_for(lambda: self.cluster(m, "eu-west-b")["state"] == "drained", timeout=4,
                 message="a soft drain past its deadline is 'drained'")
        c = self.cluster(m, "eu-west-b")
        self.assertFalse(c["keeps_sessions"], "past the deadline it keeps no sessions")
        ex = m.admin("GET", "/api/v1/explain?ip=%s&cookie=%s"
                     % (IP["GB"], sign_cookie(KEY[0], KEY[1], "eu-west-b"))).json()
        self.assertEqual(ex["cookie"]["result"], "valid")
        self.assertNotEqual(ex["decision"], "sticky", "past its deadline: a new decision")
        self.assertEqual(ex["cluster"], "us-east-a", "eu-west has nothing taking new sessions")

        self.change(m, "POST", "/api/v1/clusters/eu-west-a/drain",
                    {"mode": "hard", "deadline_s": 600})
        c = self.cluster(m, "eu-west-a")
        self.assertEqual((c["state"], c["drain"]["mode"]), ("drained", "hard"))
        self.assertTrue(590 <= c["drain"]["deadline_s"] <= 601, c["drain"])
        self.assertEqual((c["takes_new_sessions"], c["keeps_sessions"]), (False, False))

        self.change(m, "PUT", "/api/v1/clusters/us-east-a/weight", {"weight": 0, "force": True})
        c = self.cluster(m, "us-east-a")
        self.assertEqual((c["state"], c["weight"], c["configured_weight"]), ("active", 0, 100),
                         "weight 0 stays active")
        self.assertEqual((c["takes_new_sessions"], c["keeps_sessions"]), (False, True))

        ep = self.eps["us-east-a"][0]
        self.origin.set_health(ep, 503)
        self.addCleanup(self.origin.set_health, ep, 200)
        wait_for(lambda: self.cluster(m, "us-east-a")["state"] == "down", timeout=4,
                 message="an unhealthy cluster is 'down'")
        c = self.cluster(m, "us-east-a")
        self.assertEqual((c["healthy"], c["endpoints_up"]), (False, 0))
        self.assertEqual(c["endpoints"][0]["health"], "down")
        self.assertEqual((c["takes_new_sessions"], c["keeps_sessions"]), (False, False))
        self.origin.set_health(ep, 200)
        wait_for(lambda: self.cluster(m, "us-east-a")["state"] == "active", timeout=4)


# ------------------------------------------------------------------ changes

class ChangeTest(EdgeCase):

    def test_drain_undrain_weight_answers(self):
        m = self.edge()
        ans = self.change(m, "POST", "/api/v1/clusters/eu-west-a/drain", {})
        self.assertIsInstance(ans.get("change"), dict, "the change: %r" % ans)
        c = self.cluster(m, "eu-west-a")
        self.assertEqual((c["state"], c["drain"]["mode"]), ("draining", "soft"),
                         "mode defaults to soft")
        self.assertNotIn("eu-west-a", self.landings(m, 8), "no new sessions")
        self.change(m, "POST", "/api/v1/clusters/eu-west-a/drain", {"mode": "hard"})
        self.assertEqual(self.cluster(m, "eu-west-a")["state"], "drained", "soft -> hard")
        resp = m.admin("POST", "/api/v1/clusters/eu-west-a/undrain")  # no body at all
        self.assertEqual(resp.status, 200, "undrain with no body: %r" % resp.body)
        self.assertEqual(resp.json()["generation"], resp.json()["previous_generation"] + 1)
        c = self.cluster(m, "eu-west-a")
        self.assertEqual((c["state"], c["drain"]), ("active", None))
        self.change(m, "POST", "/api/v1/clusters/eu-west-a/undrain", {})
        ans = self.change(m, "PUT", "/api/v1/clusters/eu-west-b/weight", {"weight": 20})
        c = self.cluster(m, "eu-west-b")
        self.assertEqual((c["weight"], c["configured_weight"]), (20, 50))
        self.change(m, "PUT", "/api/v1/clusters/eu-west-b/weight", {"weight": 2.5})
        self.assertEqual(self.cluster(m, "eu-west-b")["weight"], 2.5)
        self.change(m, "PUT", "/api/v1/clusters/eu-west-a/weight", {"weight": 0})
        self.assertEqual(set(self.landings(m, 8)), {"eu-west-b"}, "weight 0 takes no new sessions")

    def test_reload_good_and_bad(self):
        m = self.edge()
        with open(m.config_path) as f:
            cfg = json.load(f)
        cfg["regions"][1]["clusters"][0]["weight"] = 30
        with open(m.config_path, "w") as f:
            json.dump(cfg, f)
        self.change(m, "POST", "/api/v1/reload")
        self.assertEqual(self.cluster(m, "us-east-a")["configured_weight"], 30)

        before = ctl_state(self.status(m))
        n_hist = self.history_len(m)
        bad_files = [
            ("negative weight", lambda c: c["regions"][0]["clusters"][1].__setitem__("weight", -1),
             ("regions[0].clusters[1].weight",)),
            ("wrong type", lambda c: c["health"].__setitem__("interval_ms", "fast"),
             ("health.interval_ms",)),
            ("unknown region in routing",
             lambda c: c["routing"]["countries"].__setitem__("US", ["mars"]),
             ("routing.countries.US",)),
        ]
        for label, mutate, paths in bad_files:
            with self.subTest(case=label):
                bad = json.loads(json.dumps(cfg))
                mutate(bad)
                with open(m.config_path, "w") as f:
                    json.dump(bad, f)
                resp = m.admin("POST", "/api/v1/reload")
                self.assertEqual(resp.status, 400, "%s: %d %r" % (label, resp.status, resp.body))
                ans = resp.json()
                self.assertIsInstance(ans.get("error"), str)
                self.assertIsInstance(ans.get("errors"), list)
                for p in paths:
                    self.assertTrue(any(e.startswith(p) for e in ans["errors"]),
                                    "an error names %s: %r" % (p, ans["errors"]))
                self.assertEqual(ctl_state(self.status(m)), before, "running config stays")
        with open(m.config_path, "w") as f:
            f.write("{ not json")
        resp = m.admin("POST", "/api/v1/reload")
        self.assertEqual(resp.status, 400)
        self.assertTrue(resp.json().get("errors"), "a syntax error is listed too")
        self.assertEqual(ctl_state(self.status(m)), before)
        self.assertEqual(self.history_len(m), n_hist, "failed reloads are not changes")
        self.assertEqual(get(m, "/after", IP["US"]).status, 200, "still serving")

    def test_refused_calls_change_nothing(self):
        m = self.edge()
        self.change(m, "PUT", "/api/v1/clusters/us-east-a/weight", {"weight": 70})
        before = ctl_state(self.status(m))
        n_hist = self.history_len(m)
        drain = "/api/v1/clusters/eu-west-a/drain"
        undrain = "/api/v1/clusters/eu-west-a/undrain"
        weight = "/api/v1/clusters/eu-west-a/weight"
        cases = [
            ("POST", "/api/v1/clusters/nope/drain", {"mode": "soft"}, 404),
            ("POST", "/api/v1/clusters/nope/undrain", {}, 404),
            ("PUT", "/api/v1/clusters/nope/weight", {"weight": 3}, 404),
            ("POST", drain, b"not json", 400),
            ("POST", drain, b'{"mode": "soft"', 400),
            ("POST", drain, b"[]", 400),
            ("POST", drain, b'"soft"', 400),
            ("POST", drain, {"mode": "x"}, 400),
            ("POST", drain, {"mode": 1}, 400),
            ("POST", drain, {"mode": None}, 400),
            ("POST", drain, {"deadline_s": 0}, 400),
            ("POST", drain, {"deadline_s": -5}, 400),
            ("POST", drain, {"deadline_s": "10"}, 400),
            ("POST", drain, {"force": "yes"}, 400),
            ("POST", drain, {"dry_run": 1}, 400),
            ("POST", drain, {"mode": "soft", "bogus": 1}, 400),
            ("POST", undrain, b"nope", 400),
            ("POST", undrain, {"bogus": 1}, 400),
            ("PUT", weight, {"weight": -1}, 400),
            ("PUT", weight, {"weight": "5"}, 400),
            ("PUT", weight, {"weight": None}, 400),
            ("PUT", weight, {}, 400),
            ("PUT", weight, {"weight": 5, "extra": True}, 400),
            ("PUT", weight, b"weight=5", 400),
            ("PUT", weight, {"weight": True}, 400),
            ("GET", drain, None, 405),
            ("PUT", drain, {"mode": "soft"}, 405),
            ("DELETE", drain, None, 405),
            ("GET", undrain, None, 405),
            ("POST", weight, {"weight": 5}, 405),
            ("GET", weight, None, 405),
            ("GET", "/api/v1/reload", None, 405),
            ("GET", "/api/v1/undo", None, 405),
            ("POST", "/api/v1/status", {}, 405),
            ("POST", "/api/v1/history", {}, 405),
            ("DELETE", "/api/v1/explain?ip=81.2.69.142", None, 405),
        ]
        allow = {drain: "POST", undrain: "POST", weight: "PUT", "/api/v1/reload": "POST",
                 "/api/v1/undo": "POST", "/api/v1/status": "GET", "/api/v1/history": "GET"}
        for method, path, body, code in cases:
            with self.subTest(call=(method, path, body)):
                resp = m.admin(method, path, body)
                self.assertEqual(resp.status, code, "%s %s %r: %d %r"
                                 % (method, path, body, resp.status, resp.body[:200]))
                try:
                    err = resp.json()
                except ValueError:
                    self.fail("error body is not JSON: %r" % resp.body[:200])
                self.assertIsInstance(err.get("error"), str, err)
                if code == 405 and path in allow:
                    self.assertIn(allow[path], (resp.get("Allow") or ""),
                                  "Allow header: %r" % resp.headers)
                self.assertEqual(ctl_state(self.status(m)), before, "nothing changed")
        self.assertEqual(self.history_len(m), n_hist, "nothing audited")


# ------------------------------------------------------------------ explain

class ExplainTest(EdgeCase):

    def explain(self, m, ip, cookie=None):
        q = "/api/v1/explain?ip=" + ip.replace(":", "%3A")
        if cookie is not None:
            q += "&cookie=" + cookie
        resp = m.admin("GET", q)
        self.assertEqual(resp.status, 200, "%s: %d %r" % (q, resp.status, resp.body[:300]))
        return resp.json()

    @staticmethod
    def eligibility(ex):
        return {c["name"]: (c["eligible"], c["reason"])
                for cand in ex["candidates"] for c in cand["clusters"]}

    def test_location_candidates_decision(self):
        m = self.shared_edge()
        ex = self.explain(m, IP["GB"])
        self.assertEqual(ex["generation"], self.gen(m))
        self.assertEqual(ex["ip"], IP["GB"])
        loc = ex["location"]
        self.assertEqual((loc["found"], loc["country"], loc["continent"]), (True, "GB", "EU"))
        self.assertAlmostEqual(loc["lat"], 51.5, delta=1)
        self.assertEqual([(c["region"], c["rule"]) for c in ex["candidates"]],
                         [("eu-west", "country"), ("us-east", "country")])
        self.assertEqual([c["name"] for c in ex["candidates"][0]["clusters"]],
                         ["eu-west-a", "eu-west-b"])
        self.assertEqual(set(self.eligibility(ex).values()), {(True, None)})
        self.assertIn(ex["cookie"], (None, {"present": False}), "no cookie: %r" % ex["cookie"])
        self.assertEqual((ex["decision"], ex["region"]), ("geo", "eu-west"))
        self.assertIn(ex["cluster"], ("eu-west-a", "eu-west-b"))

        ex = self.explain(m, IP["US"])
        self.assertEqual([(c["region"], c["rule"]) for c in ex["candidates"]],
                         [("us-east", "country"), ("eu-west", "default")],
                         "the chain ends with routing.default")
        self.assertEqual(ex["cluster"], "us-east-a")
        ex = self.explain(m, IP["DE"])
        self.assertEqual(ex["location"]["country"], "DE")
        self.assertEqual([(c["region"], c["rule"]) for c in ex["candidates"]],
                         [("eu-west", "continent"), ("us-east", "continent")])
        ex = self.explain(m, IP["PRIVATE"])
        self.assertFalse(ex["location"]["found"])
        self.assertEqual([(c["region"], c["rule"]) for c in ex["candidates"]],
                         [("eu-west", "default"), ("us-east", "default")])

    def test_skip_reasons(self):
        m = self.edge()
        self.change(m, "POST", "/api/v1/clusters/eu-west-b/drain", {"mode": "soft"})
        ex = self.explain(m, IP["GB"])
        self.assertEqual(self.eligibility(ex)["eu-west-b"], (False, "drained"))
        self.assertEqual(ex["cluster"], "eu-west-a")
        self.change(m, "PUT", "/api/v1/clusters/eu-west-a/weight", {"weight": 0})
        ex = self.explain(m, IP["GB"])
        self.assertEqual(self.eligibility(ex)["eu-west-a"], (False, "weight 0"))
        self.assertEqual((ex["decision"], ex["region"], ex["cluster"]),
                         ("failover", "us-east", "us-east-a"), "the next region takes it")
        self.assertEqual(ex["generation"], self.gen(m), "explained against the current generation")
        ep = self.eps["us-east-a"][0]
        self.origin.set_health(ep, 503)
        self.addCleanup(self.origin.set_health, ep, 200)
        wait_for(lambda: self.eligibility(self.explain(m, IP["US"]))["us-east-a"]
                 == (False, "down"), timeout=4, message="reason 'down'")
        self.origin.set_health(ep, 200)
        self.wait_healthy(m)

    def test_cookie_verdicts(self):
        m = self.edge()
        ex = self.explain(m, IP["GB"], cookie=sign_cookie(KEY[0], KEY[1], "us-east-a"))
        self.assertEqual(ex["cookie"], {"present": True, "result": "valid", "cluster": "us-east-a"})
        self.assertEqual((ex["decision"], ex["cluster"]), ("sticky", "us-east-a"))
        now = int(time.time())
        cases = {
            "malformed": "garbage",
            "bad_signature": sign_cookie(KEY[0], b"x" * 32, "eu-west-a"),
            "unknown_key": sign_cookie("k9", KEY[1], "eu-west-a"),
            "expired": sign_cookie(KEY[0], KEY[1], "eu-west-a", issued=now - 7200,
                                   expires=now - 3600),
        }
        for result, value in cases.items():
            with self.subTest(result=result):
                ex = self.explain(m, IP["GB"], cookie=value)
                self.assertTrue(ex["cookie"]["present"])
                self.assertEqual(ex["cookie"]["result"], result)
                self.assertNotEqual(ex["decision"], "sticky")
        self.change(m, "POST", "/api/v1/clusters/us-east-a/drain", {"mode": "hard"})
        ex = self.explain(m, IP["GB"], cookie=sign_cookie(KEY[0], KEY[1], "us-east-a"))
        self.assertEqual(ex["cookie"]["result"], "valid")
        self.assertEqual(ex["decision"], "geo", "a hard-drained cluster keeps no sessions")
        self.assertEqual(ex["region"], "eu-west")

    def test_bad_queries(self):
        m = self.shared_edge()
        gen = self.gen(m)
        for q in ("/api/v1/explain", "/api/v1/explain?ip=", "/api/v1/explain?ip=not-an-ip",
                  "/api/v1/explain?ip=1.2.3.400"):
            with self.subTest(q=q):
                resp = m.admin("GET", q)
                self.assertEqual(resp.status, 400, "%s: %d" % (q, resp.status))
                self.assertIn("error", resp.json())
        ex = self.explain(m, IP["GB6"])
        self.assertEqual(ex["location"]["country"], "GB", "an IPv6 client")
        self.assertEqual(self.gen(m), gen, "explain changes nothing")


# ---------------------------------------------------------------- guardrail

class GuardrailTest(EdgeCase):

    def test_stranding_refused_then_forced(self):
        # GB and the EU continent go to eu-west only, and so does the
        # default route; US goes to us-east, then eu-west.
        m = self.edge(routing={"countries": {"GB": ["eu-west"], "US": ["us-east", "eu-west"]},
                               "continents": {"EU": ["eu-west"]}, "proximity": False,
                               "default": ["eu-west"]})
        self.change(m, "POST", "/api/v1/clusters/eu-west-b/drain", {"mode": "soft"})
        drain = "/api/v1/clusters/eu-west-a/drain"
        n_hist = self.history_len(m)
        before = ctl_state(self.status(m))
        want = ["continents.EU", "countries.GB", "default"]
        for method, path, body in (("POST", drain, {"mode": "soft"}),
                                   ("POST", drain, {"mode": "hard", "deadline_s": 5}),
                                   ("PUT", "/api/v1/clusters/eu-west-a/weight", {"weight": 0})):
            with self.subTest(call=(method, path, body)):
                resp = m.admin(method, path, body)
                self.assertEqual(resp.status, 409, "the last eu-west cluster: %r" % resp.body)
                ans = resp.json()
                self.assertEqual(sorted(ans.get("stranded") or []), want, ans)
                for who in want:
                    self.assertIn(who, ans["error"], "the message names who is stranded")
                self.assertNotIn("countries.US", ans["error"], "US still has us-east")
        self.assertEqual(ctl_state(self.status(m)), before, "a refused change changes nothing")
        self.assertEqual(self.history_len(m), n_hist, "and is not audited")
        self.change(m, "PUT", "/api/v1/clusters/eu-west-a/weight", {"weight": 5})
        self.change(m, "POST", drain, {"mode": "soft", "force": True})
        self.assertEqual(self.cluster(m, "eu-west-a")["state"], "draining", "force applies it")
        self.assertEqual(get(m, "/us", IP["US"]).get("X-Origin-Cluster"), "us-east-a")

    def test_whole_region_drain_allowed(self):
        m = self.edge()
        self.change(m, "POST", "/api/v1/clusters/eu-west-a/drain", {"mode": "hard"})
        self.change(m, "POST", "/api/v1/clusters/eu-west-b/drain", {"mode": "soft"})
        self.assertEqual(set(self.landings(m, 4)), {"us-east-a"}, "us-east takes eu-west's clients")
        before = ctl_state(self.status(m))
        resp = m.admin("POST", "/api/v1/clusters/us-east-a/drain", {"mode": "soft"})
        self.assertEqual(resp.status, 409)
        stranded = resp.json().get("stranded")
        self.assertEqual(sorted(stranded or []),
                         ["continents.EU", "countries.GB", "countries.US", "default"], resp.json())
        resp = m.admin("POST", "/api/v1/clusters/us-east-a/drain",
                       {"mode": "soft", "dry_run": True})
        self.assertEqual(resp.status, 200, "a dry run answers: %r" % resp.body)
        self.assertEqual(sorted(resp.json().get("stranded") or []),
                         ["continents.EU", "countries.GB", "countries.US", "default"],
                         "a dry run tells who would be stranded")
        self.assertEqual(ctl_state(self.status(m)), before)
        self.change(m, "POST", "/api/v1/clusters/eu-west-a/undrain", {})  # never refused

    def test_dry_run_shares(self):
        m = self.edge()
        seen = self.landings(m, 16)
        self.assertEqual(set(seen), {"eu-west-a", "eu-west-b"}, "GB traffic to both: %r" % seen)
        before = ctl_state(self.status(m))
        n_hist = self.history_len(m)
        resp = m.admin("POST", "/api/v1/clusters/eu-west-a/drain",
                       {"mode": "soft", "dry_run": True})
        self.assertEqual(resp.status, 200, resp.body)
        ans = resp.json()
        self.assertIs(ans.get("dry_run"), True)
        self.assertIsInstance(ans.get("message"), str)
        self.assertEqual(ans.get("stranded"), [])
        shares = {s["cluster"]: s["share"] for s in ans["new_sessions_to"]}
        self.assertGreaterEqual(shares.get("eu-west-b", 0), 0.95, "eu-west-b takes ~100%%: %r"
                                % shares)
        self.assertNotIn("eu-west-a", shares)
        self.assertAlmostEqual(sum(shares.values()), 1.0, delta=0.01)
        self.assertNotIn("previous_generation", ans, "a dry run makes no generation")
        self.assertEqual(ctl_state(self.status(m)), before, "dry run changes nothing")

        # With eu-west-b at weight 0, eu-west-a's GB clients would fail over.
        self.change(m, "PUT", "/api/v1/clusters/eu-west-b/weight", {"weight": 0})
        before = ctl_state(self.status(m))
        resp = m.admin("POST", "/api/v1/clusters/eu-west-a/drain", {"dry_run": True})
        self.assertEqual(resp.status, 200)
        shares = {s["cluster"]: s["share"] for s in resp.json()["new_sessions_to"]}
        self.assertGreaterEqual(shares.get("us-east-a", 0), 0.95, shares)
        resp = m.admin("PUT", "/api/v1/clusters/eu-west-a/weight", {"weight": 0, "dry_run": True})
        self.assertEqual(resp.status, 200)
        self.assertIs(resp.json().get("dry_run"), True)
        self.assertEqual(ctl_state(self.status(m)), before, "weight dry run changes nothing")
        self.assertEqual(self.history_len(m), n_hist + 1, "dry runs are not audited")


# ------------------------------------------------------------------ metrics

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(testcase, text):
    """Parses Prometheus text 0.0.4 strictly; returns (types, samples) with
    samples {(name, frozenset(labels.items())): value}."""
    tc = testcase
    tc.assertTrue(text.endswith("\n"), "ends with a newline")
    types, helps, samples, seen_families = {}, {}, {}, []
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                tc.assertGreaterEqual(len(parts), 3, "line %d: %r" % (n, line))
                name = parts[2]
                if parts[1] == "TYPE":
                    tc.assertNotIn(name, types, "line %d: TYPE of %s given twice" % (n, name))
                    tc.assertEqual(len(parts), 4, "line %d: %r" % (n, line))
                    tc.assertIn(parts[3], ("counter", "gauge", "histogram", "summary", "untyped"),
                                "line %d" % n)
                    types[name] = parts[3]
                    seen_families.append(name)
                else:
                    tc.assertNotIn(name, helps, "line %d: HELP of %s given twice" % (n, name))
                    helps[name] = parts[3] if len(parts) > 3 else ""
            continue
        m = SAMPLE_RE.match(line)
        tc.assertIsNotNone(m, "line %d is not a sample: %r" % (n, line))
        name, _, body, value = m.group(1), m.group(2), m.group(3), m.group(4)
        labels = {}
        if body:
            pairs = LABEL_RE.findall(body)
            rebuilt = ",".join('%s="%s"' % p for p in pairs)
            tc.assertIn(body.rstrip(","), (rebuilt,), "line %d: labels %r" % (n, body))
            for k, v in pairs:
                tc.assertNotIn(k, labels, "line %d: label %s twice" % (n, k))
                tc.assertRegex(k, r"^[a-z][a-z0-9_]*$", "line %d: label name" % n)
                labels[k] = v
        try:
            val = float(value)
        except ValueError:
            tc.fail("line %d: value %r" % (n, value))
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                family = name[:-len(suffix)]
        tc.assertIn(family, types, "line %d: sample of %s before its TYPE" % (n, name))
        tc.assertEqual(seen_families[-1], family,
                       "line %d: samples of %s grouped under their TYPE" % (n, family))
        key = (name, frozenset(labels.items()))
        tc.assertNotIn(key, samples, "line %d: duplicate series %r" % (n, line))
        samples[key] = val
    return types, helps, samples


def check_conventions(tc, types, helps, samples):
    for name, kind in types.items():
        with tc.subTest(metric=name):
            tc.assertRegex(name, r"^meridian_[a-z0-9]+(_[a-z0-9]+)*$", "snake_case, meridian_")
            tc.assertIn(name, helps, "a HELP line")
            if kind == "counter":
                tc.assertTrue(name.endswith("_total"), "a counter ends in _total")
            else:
                tc.assertFalse(name.endswith("_total"), "only counters end in _total")
            if kind == "histogram":
                series = {}
                for (sname, labels), val in samples.items():
                    if sname == name + "_bucket":
                        d = dict(labels)
                        tc.assertIn("le", d, "a bucket has le")
                        rest = frozenset((k, v) for k, v in labels if k != "le")
                        series.setdefault(rest, []).append((float(d["le"]), d["le"], val))
                    elif sname in (name, name + "_sum", name + "_count"):
                        tc.assertNotEqual(sname, name, "histogram has no bare samples")
                        tc.assertNotIn("le", dict(labels))
                tc.assertTrue(series, "buckets")
                for rest, buckets in series.items():
                    buckets.sort()
                    tc.assertEqual(buckets[-1][1], "+Inf", "an +Inf bucket")
                    counts = [b[2] for b in buckets]
                    tc.assertEqual(counts, sorted(counts), "cumulative buckets: %r" % buckets)
                    tc.assertEqual(samples.get((name + "_count", rest)), counts[-1],
                                   "_count equals the +Inf bucket")
                    tc.assertIn((name + "_sum", rest), samples)
    for (sname, _labels), val in samples.items():
        if sname.endswith("_total"):
            tc.assertGreaterEqual(val, 0)
            tc.assertFalse(math.isnan(val))


class MetricsTest(EdgeCase):

    def metrics(self, m):
        resp = m.admin("GET", "/metrics")
        self.assertEqual(resp.status, 200)
        ctype = (resp.get("Content-Type") or "").replace(" ", "")
        self.assertTrue(ctype.startswith("text/plain;version=0.0.4"), resp.get("Content-Type"))
        return parse_metrics(self, resp.text)

    def values(self, m, name, **match):
        """{labels-dict-as-tuple: value} of name's series whose labels include match."""
        _, _, samples = self.metrics(m)
        out = {}
        for (sname, labels), val in samples.items():
            d = dict(labels)
            if sname == name and all(d.get(k) == v for k, v in match.items()):
                out[tuple(sorted(d.items()))] = val
        return out

    def total(self, m, name, **match):
        return sum(self.values(m, name, **match).values())

    def test_format_conventions_and_traffic(self):
        m = self.shared_edge()
        for i in range(3):
            self.assertEqual(get(m, "/warm%d" % i, IP["GB"]).status, 200)
        types, helps, samples = self.metrics(m)
        check_conventions(self, types, helps, samples)
        expected = {
            "meridian_requests_total": "counter",
            "meridian_decisions_total": "counter",
            "meridian_request_duration_seconds": "histogram",
            "meridian_upstream_connect_failures_total": "counter",
            "meridian_upstream_retries_total": "counter",
            "meridian_bad_cookies_total": "counter",
            "meridian_endpoint_up": "gauge",
            "meridian_cluster_eligible": "gauge",
            "meridian_cluster_weight": "gauge",
            "meridian_active_connections": "gauge",
            "meridian_config_generation": "gauge",
            "meridian_config_reload_failures_total": "counter",
            "meridian_new_sessions_total": "counter",
        }
        for name, kind in expected.items():
            self.assertEqual(types.get(name), kind, "%s is a %s" % (name, kind))
        label_sets = {
            "meridian_requests_total": {"cluster", "code"},
            "meridian_decisions_total": {"decision"},
            "meridian_new_sessions_total": {"cluster", "country"},
            "meridian_endpoint_up": {"cluster", "endpoint"},
            "meridian_cluster_eligible": {"cluster"},
            "meridian_cluster_weight": {"cluster"},
        }
        for name, labels in label_sets.items():
            got = [dict(l) for (s, l) in samples if s == name]
            self.assertTrue(got, "%s has series" % name)
            for d in got:
                self.assertTrue(labels <= set(d), "%s labels %r" % (name, d))

        req0 = self.total(m, "meridian_requests_total", cluster="us-east-a")
        ok2xx0 = sum(v for k, v in self.values(m, "meridian_requests_total",
                                               cluster="us-east-a").items()
                     if dict(k).get("code") in ("2xx", "200"))
        geo0 = self.total(m, "meridian_decisions_total", decision="geo")
        sticky0 = self.total(m, "meridian_decisions_total", decision="sticky")
        dur0 = self.total(m, "meridian_request_duration_seconds_count")
        ns0 = self.total(m, "meridian_new_sessions_total", cluster="us-east-a", country="US")
        for i in range(3):
            self.assertEqual(get(m, "/us%d" % i, IP["US"]).status, 200)
        for i in range(2):
            resp = get(m, "/st%d" % i, IP["US"], cookie=self.cookie("us-east-a"))
            self.assertEqual(resp.get("X-Origin-Cluster"), "us-east-a")
        wait_for(lambda: self.total(m, "meridian_requests_total", cluster="us-east-a")
                 >= req0 + 5, timeout=3, message="requests_total{cluster=us-east-a} +5")
        self.assertEqual(self.total(m, "meridian_requests_total", cluster="us-east-a"), req0 + 5)
        ok = sum(v for k, v in self.values(m, "meridian_requests_total",
                                           cluster="us-east-a").items()
                 if dict(k).get("code") in ("2xx", "200"))
        self.assertEqual(ok - ok2xx0, 5, "the code label counts the 200s")
        self.assertEqual(self.total(m, "meridian_decisions_total", decision="geo"), geo0 + 3)
        self.assertEqual(self.total(m, "meridian_decisions_total", decision="sticky"),
                         sticky0 + 2)
        self.assertEqual(self.total(m, "meridian_new_sessions_total", cluster="us-east-a",
                                    country="US"), ns0 + 3)
        self.assertGreaterEqual(self.total(m, "meridian_request_duration_seconds_count"),
                                dur0 + 5)
        _, _, samples = self.metrics(m)
        check_conventions(self, types, helps, samples)

    def test_gauges_follow_changes(self):
        m = self.edge()
        st = self.status(m)
        self.assertEqual(self.total(m, "meridian_config_generation"), st["generation"])
        self.assertEqual(self.total(m, "meridian_cluster_weight", cluster="eu-west-b"), 50)
        self.assertEqual(self.total(m, "meridian_cluster_eligible", cluster="eu-west-a"), 1)
        self.change(m, "PUT", "/api/v1/clusters/eu-west-b/weight", {"weight": 17})
        self.assertEqual(self.total(m, "meridian_cluster_weight", cluster="eu-west-b"), 17)
        self.change(m, "POST", "/api/v1/clusters/eu-west-a/drain", {})
        self.assertEqual(self.total(m, "meridian_cluster_eligible", cluster="eu-west-a"), 0)
        self.assertEqual(self.total(m, "meridian_config_generation"), st["generation"] + 2)

        fail0 = self.total(m, "meridian_config_reload_failures_total")
        with open(m.config_path) as f:
            good = f.read()
        with open(m.config_path, "w") as f:
            f.write('{"regions": 3}')
        self.assertEqual(m.admin("POST", "/api/v1/reload").status, 400)
        self.assertEqual(self.total(m, "meridian_config_reload_failures_total"), fail0 + 1)
        self.assertEqual(self.total(m, "meridian_config_generation"), st["generation"] + 2)
        with open(m.config_path, "w") as f:
            f.write(good)

        ep = self.eps["us-east-a"][0]
        self.assertEqual(self.total(m, "meridian_endpoint_up", endpoint=ep), 1)
        self.origin.set_health(ep, 503)
        self.addCleanup(self.origin.set_health, ep, 200)
        wait_for(lambda: self.total(m, "meridian_endpoint_up", endpoint=ep) == 0, timeout=4,
                 message="meridian_endpoint_up 0 after the endpoint fails its checks")
        self.assertEqual(self.total(m, "meridian_cluster_eligible", cluster="us-east-a"), 0)
        self.origin.set_health(ep, 200)
        wait_for(lambda: self.total(m, "meridian_endpoint_up", endpoint=ep) == 1, timeout=4)

    def test_bad_cookie_and_active_connections(self):
        m = self.shared_edge()
        bad0 = self.total(m, "meridian_bad_cookies_total")
        forged = "MRD=" + sign_cookie(KEY[0], b"z" * 32, "eu-west-a")
        self.assertEqual(get(m, "/forged", IP["GB"], cookie=forged).status, 200)
        wait_for(lambda: self.total(m, "meridian_bad_cookies_total") >= bad0 + 1, timeout=3,
                 message="bad_cookies_total +1")
        self.assertEqual(self.total(m, "meridian_bad_cookies_total"), bad0 + 1)
        self.assertEqual(get(m, "/good", IP["GB"], cookie=self.cookie("eu-west-a")).status, 200)
        self.assertEqual(self.total(m, "meridian_bad_cookies_total"), bad0 + 1,
                         "a valid cookie is not counted")

        conns = [RawConn(port=m.port, timeout=5) for _ in range(3)]
        try:
            for i, c in enumerate(conns):
                self.assertEqual(c.request("GET", "/keep%d" % i,
                                           headers=xff_headers()).status, 200)
            wait_for(lambda: self.total(m, "meridian_active_connections") >= 3, timeout=3,
                     message="3 open client connections counted")
        finally:
            for c in conns:
                c.close()
        wait_for(lambda: self.total(m, "meridian_active_connections") == 0, timeout=3,
                 message="active connections back to 0")

    def test_connect_failures_and_retries(self):
        flaky_eps = {"flaky-a": [addr()]}
        flaky = Origin(flaky_eps, log=False).start()
        try:
            m = self.edge(extra_regions=[region("spare", flaky_eps, 0.0, 0.0)],
                          health={"fall": 30}, wait=CLUSTERS + ("flaky-a",))
            cf0 = self.total(m, "meridian_upstream_connect_failures_total", cluster="flaky-a")
            rt0 = self.total(m, "meridian_upstream_retries_total")
            flaky.stop()
            resp = get(m, "/retry-me", IP["GB"], cookie=self.cookie("flaky-a"))
            self.assertEqual(resp.status, 200, "retried elsewhere, never an error")
            self.assertNotEqual(resp.get("X-Origin-Cluster"), "flaky-a")
            wait_for(lambda: self.total(m, "meridian_upstream_connect_failures_total",
                                        cluster="flaky-a") >= cf0 + 1, timeout=3,
                     message="connect_failures_total{cluster=flaky-a} +1")
            self.assertGreaterEqual(self.total(m, "meridian_upstream_retries_total"), rt0 + 1)
        finally:
            flaky.stop()
            flaky.remove_files()


def xff_headers():
    return [("X-Forwarded-For", IP["GB"])]


# -------------------------------------------------------- healthz, shutdown

class HealthzShutdownTest(EdgeCase):

    def test_healthz_503_while_shutting_down(self):
        m = self.edge()
        self.assertEqual(m.admin("GET", "/healthz", token=False).status, 200)
        n = 40000
        path = "/slow?n=%d&every_ms=50&step=2000" % n  # 20 steps: ~1 s
        with RawConn(port=m.port, timeout=8) as c:
            c.send_request("GET", path, headers=xff_headers())
            head = c.read_head()
            self.assertEqual(head.status, 200)
            started = time.monotonic()
            m.proc.send_signal(signal.SIGTERM)

            def healthz():
                try:
                    return request(m.admin_port, "GET", "/healthz", host=m.admin_host,
                                   timeout=2).status
                except (OSError, IncompleteResponse, ValueError):
                    return None
            seen = []
            wait_for(lambda: seen.append(healthz()) or seen[-1] == 503, timeout=3,
                     message="/healthz 503 after SIGTERM (saw %r)" % seen)
            self.assertLess(time.monotonic() - started, 0.8, "seen while the download runs")
            self.assertTrue(m.running(), "still serving the download")
            try:
                resp = c.read_body(head)
            except IncompleteResponse as e:
                self.fail("download cut after %d bytes" % e.partial.length)
            self.assertEqual(resp.length, n)
            self.assertEqual(hashlib.sha256(resp.body).hexdigest(), pattern_sha256(n))
        try:
            code = m.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.fail("meridian still running 5 s after the download finished")
        self.assertEqual(code, 0, m.stderr_text())


if __name__ == "__main__":
    unittest.main(verbosity=2)
