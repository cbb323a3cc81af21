"""tests/integration/test_redirect.py: redirect mode.

A listener with `"mode": "redirect"` (or a request whose Host has
`{"mode": "redirect"}` under the top-level "hosts") never proxies: a request
without a valid session cookie gets `307 Temporary Redirect` to the chosen
cluster's public_url + the request target, with that cluster's Set-Cookie
(the same pick as proxying: GeoIP, weights, drains, health); a request with
a valid cookie gets 307 to its sticky cluster's public_url and no new
cookie. "hosts" overrides the listener's mode per Host (case-insensitive,
port ignored), both ways. A configuration using redirect mode where a
cluster lacks public_url is refused by `meridian -t` at that cluster's
public_url path. (redirect_https / 308 is covered by test_tls.py.)

The client's country comes from X-Forwarded-For sent by the trusted
loopback peer (routing_helpers.xff). The C test origin serves every cluster
so that "nothing was proxied" can be checked in its log.

Standalone unittest script; stdlib only; every wait bounded.
"""

import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (MERIDIAN_BIN, Meridian, OriginTestCase, RawConn, addr, wait_for,  # noqa: E402
                     write_config)
from routing_helpers import (IP, cookie_cluster, cookie_fields, db, set_cookie,  # noqa: E402
                             set_cookies, sign_cookie, write_keys, xff)

KEY = ("k1", bytes(range(31, 63)))
EU_URL = "https://eu-west-a.meridian.test"
US_URL = "https://us.meridian.test:8443"
MAX_AGE = 86400


class RedirectTest(OriginTestCase):
    """Regions eu-west {eu-west-a} (GB, the EU continent) and us-east
    {us-east-a} (US, the default); one C origin serves both."""

    ENDPOINTS = {"eu-west-a": 1, "us-east-a": 1}
    TMP_PREFIX = "mr-redir-"

    # ------------------------------------------------------------ helpers

    def config(self, listener=None, hosts=None, urls=None):
        urls = {"eu-west-a": EU_URL, "us-east-a": US_URL} if urls is None else urls

        def cl(name):
            c = {"name": name, "weight": 100, "endpoints": self.eps[name]}
            if urls.get(name) is not None:
                c["public_url"] = urls[name]
            return c
        cfg = {
            "listeners": [dict({"name": "web", "address": addr()},
                               **({"mode": "redirect"} if listener is None else listener))],
            "geoip": {"database": db("geoip2.mmdb")},
            "health": {"interval_ms": 200, "timeout_ms": 100, "rise": 1, "fall": 1},
            "session": {"max_age_s": MAX_AGE},
            "timeouts": {"client_header_ms": 3000, "client_idle_ms": 5000,
                         "upstream_connect_ms": 1000, "upstream_response_ms": 5000},
            "regions": [
                {"name": "eu-west", "lat": 53.35, "lon": -6.26, "clusters": [cl("eu-west-a")]},
                {"name": "us-east", "lat": 39.04, "lon": -77.49, "clusters": [cl("us-east-a")]},
            ],
            "routing": {"countries": {"GB": ["eu-west", "us-east"], "US": ["us-east", "eu-west"]},
                        "continents": {"EU": ["eu-west", "us-east"]},
                        "proximity": False, "default": ["us-east", "eu-west"]},
        }
        if hosts is not None:
            cfg["hosts"] = hosts
        return cfg

    def write(self, cfg):
        d = tempfile.mkdtemp(dir=self.tmp)
        path, _ = write_config(d, cfg)
        write_keys(d, [KEY])
        return path

    def edge(self, **kw):
        return Meridian(self.write(self.config(**kw)))

    def cookie(self, cluster):
        return sign_cookie(KEY[0], KEY[1], cluster)

    def get(self, m, target, ip=None, cookie=None, host=None, method="GET", body=None):
        hdrs = xff(ip)
        if cookie is not None:
            hdrs.append(("Cookie", "MRD=" + cookie))
        if host is not None:
            hdrs.append(("Host", host))
        with RawConn(port=m.port, timeout=5) as c:
            return c.request(method, target, headers=hdrs, body=body)

    def assert_redirect(self, resp, url, cluster=None, tag=""):
        """307 to url; Set-Cookie naming cluster (None: no Set-Cookie). Returns the cookie."""
        self.assertEqual(resp.status, 307, "%s: %r" % (tag, resp))
        self.assertEqual(resp.reason, "Temporary Redirect", tag)
        self.assertEqual(resp.get("Location"), url, "%s: Location" % tag)
        self.assertIsNone(resp.get("X-Origin-Cluster"), "%s: never proxied" % tag)
        if cluster is None:
            self.assertEqual(set_cookies(resp), [], "%s: no new cookie for a sticky session" % tag)
            return None
        self.assertEqual(cookie_cluster(resp), cluster, "%s: Set-Cookie names %s" % (tag, cluster))
        return set_cookie(resp)[0]

    def assert_nothing_proxied(self, mark):
        self.assertEqual([e["path"] for e in self.origin.requests(since=mark)], [],
                         "the origin received nothing")

    def check(self, path):
        return subprocess.run([MERIDIAN_BIN, "-t", "-c", path], capture_output=True, text=True,
                              timeout=10, stdin=subprocess.DEVNULL)

    # --------------------------------------------------------- new sessions

    def test_new_session_redirected_with_cookie(self):
        with self.edge() as m:
            mark = self.origin.mark()
            resp = self.get(m, "/a/b?x=1&y=two", IP["GB"])
            value = self.assert_redirect(resp, EU_URL + "/a/b?x=1&y=two", "eu-west-a", "GB")
            _, attrs = set_cookie(resp)
            self.assertEqual(attrs, ["Max-Age=%d" % MAX_AGE, "Path=/", "HttpOnly", "SameSite=Lax"],
                             "the same cookie as when proxying")
            f = cookie_fields(value)
            self.assertEqual(value, sign_cookie(KEY[0], KEY[1], "eu-west-a", f["issued"],
                                                f["expires"]), "signed with the first key")
            self.assert_redirect(self.get(m, "/", IP["US"]), US_URL + "/", "us-east-a", "US")
            self.assert_redirect(self.get(m, "/p%20q?r=%2F&s", IP["DE"]),
                                 EU_URL + "/p%20q?r=%2F&s", "eu-west-a", "DE, target verbatim")
            self.assert_redirect(self.get(m, "/nobody"), US_URL + "/nobody", "us-east-a",
                                 "unknown client: the default route")
            self.assert_redirect(self.get(m, "/form?id=7", IP["GB"], method="POST", body=b"a=1"),
                                 EU_URL + "/form?id=7", "eu-west-a", "POST")
            self.assert_nothing_proxied(mark)

    def test_cookie_holder_redirected_without_new_cookie(self):
        with self.edge() as m:
            mark = self.origin.mark()
            value = self.assert_redirect(self.get(m, "/first", IP["GB"]), EU_URL + "/first",
                                         "eu-west-a", "first")
            # A US client now: the cookie wins, as when proxying.
            self.assert_redirect(self.get(m, "/again?k=v", IP["US"], cookie=value),
                                 EU_URL + "/again?k=v", None, "sticky")
            self.assert_redirect(self.get(m, "/crafted", IP["GB"], cookie=self.cookie("us-east-a")),
                                 US_URL + "/crafted", None, "our own signed cookie")
            forged = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
            self.assert_redirect(self.get(m, "/forged", IP["US"], cookie=forged),
                                 US_URL + "/forged", "us-east-a",
                                 "a forged cookie is a new decision")
            self.assert_nothing_proxied(mark)

    # -------------------------------------------------- drains and health

    def test_drained_cluster_redirects_elsewhere(self):
        with self.edge() as m:
            resp = m.admin("POST", "/api/v1/clusters/eu-west-a/drain", {"mode": "soft"})
            self.assertEqual(resp.status, 200, resp.body)
            self.assert_redirect(self.get(m, "/gb-new", IP["GB"]), US_URL + "/gb-new",
                                 "us-east-a", "GB while eu-west-a is drained")
            self.assert_redirect(self.get(m, "/gb-old", IP["GB"], cookie=self.cookie("eu-west-a")),
                                 EU_URL + "/gb-old", None, "a soft drain keeps its sessions")
            resp = m.admin("POST", "/api/v1/clusters/eu-west-a/drain", {"mode": "hard"})
            self.assertEqual(resp.status, 200, resp.body)
            self.assert_redirect(self.get(m, "/gb-moved", IP["GB"],
                                          cookie=self.cookie("eu-west-a")),
                                 US_URL + "/gb-moved", "us-east-a", "a hard drain moves them")
            resp = m.admin("POST", "/api/v1/clusters/eu-west-a/undrain", {})
            self.assertEqual(resp.status, 200, resp.body)
            self.assert_redirect(self.get(m, "/gb-back", IP["GB"]), EU_URL + "/gb-back",
                                 "eu-west-a", "undrained")

    def test_unhealthy_cluster_redirects_elsewhere(self):
        ep = self.eps["eu-west-a"][0]
        with self.edge() as m:
            self.assert_redirect(self.get(m, "/h0", IP["GB"]), EU_URL + "/h0", "eu-west-a", "up")
            self.origin.set_health(ep, 503)
            try:
                wait_for(lambda: self.get(m, "/h1", IP["GB"]).get("Location") == US_URL + "/h1",
                         timeout=5, interval=0.1,
                         message="GB goes to us-east-a once eu-west-a is down")
            finally:
                self.origin.set_health(ep, 200)
            wait_for(lambda: self.get(m, "/h2", IP["GB"]).get("Location") == EU_URL + "/h2",
                     timeout=5, interval=0.1, message="and back once it is up")

    # ---------------------------------------------------------------- hosts

    def test_host_rule_redirects_on_proxy_listener(self):
        with self.edge(listener={}, hosts={"go.meridian.test": {"mode": "redirect"}}) as m:
            mark = self.origin.mark()
            for host in ("go.meridian.test", "GO.Meridian.TEST:8080", "go.meridian.test:80"):
                with self.subTest(host=host):
                    self.assert_redirect(self.get(m, "/r?h=1", IP["GB"], host=host),
                                         EU_URL + "/r?h=1", "eu-west-a", host)
            self.assert_nothing_proxied(mark)
            for i, host in enumerate(("www.meridian.test", "go.meridian.test.example",
                                      "meridian.test")):
                with self.subTest(host=host):
                    resp = self.get(m, "/p%d" % i, IP["GB"], host=host)
                    self.assertEqual(resp.status, 200, "%s is proxied: %r" % (host, resp))
                    self.assertEqual(resp.get("X-Origin-Cluster"), "eu-west-a")
                    self.assertIsNone(resp.get("Location"))
            self.assertEqual([e["path"] for e in self.origin.requests(since=mark)],
                             ["/p0", "/p1", "/p2"], "only the other hosts reached the origin")

    def test_host_rule_proxies_on_redirect_listener(self):
        with self.edge(hosts={"api.meridian.test": {"mode": "proxy"}}) as m:
            mark = self.origin.mark()
            resp = self.get(m, "/api", IP["US"], host="API.meridian.test:8080")
            self.assertEqual((resp.status, resp.get("X-Origin-Cluster")), (200, "us-east-a"),
                             "a proxy host on a redirect listener is proxied")
            self.assert_redirect(self.get(m, "/web", IP["US"], host="www.meridian.test"),
                                 US_URL + "/web", "us-east-a", "other hosts are redirected")
            self.assertEqual([e["path"] for e in self.origin.requests(since=mark)], ["/api"])

    # -------------------------------------------------------- configuration

    def test_public_url_required_in_redirect_mode(self):
        cases = [
            ("redirect listener", self.config(urls={"eu-west-a": EU_URL}),
             "regions[1].clusters[0].public_url"),
            ("redirect host", self.config(listener={}, hosts={"go.meridian.test":
                                                              {"mode": "redirect"}},
                                          urls={"us-east-a": US_URL}),
             "regions[0].clusters[0].public_url"),
        ]
        for tag, cfg, want in cases:
            with self.subTest(tag):
                res = self.check(self.write(cfg))
                out = res.stdout + res.stderr
                self.assertEqual(res.returncode, 1, "%s: meridian -t exit code:\n%s" % (tag, out))
                lines = out.splitlines()
                self.assertTrue(any(line.startswith(want) for line in lines),
                                "%s: a line starting with %s: %r" % (tag, want, lines))
                other = ("regions[0].clusters[0].public_url" if want.startswith("regions[1]")
                         else "regions[1].clusters[0].public_url")
                self.assertFalse(any(line.startswith(other) for line in lines),
                                 "%s: the cluster that has one is not named: %r" % (tag, lines))
        # Proxy mode only: public_url is optional.
        res = self.check(self.write(self.config(listener={}, urls={})))
        self.assertEqual(res.returncode, 0, "no redirect mode, no public_url needed:\n%s%s"
                         % (res.stdout, res.stderr))

    def test_public_url_trailing_slash_and_path(self):
        urls = {"eu-west-a": "https://eu-west-a.meridian.test/", "us-east-a": "https://x.test/app"}
        path = self.write(self.config(urls=urls))
        res = self.check(path)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        with Meridian(path) as m:
            self.assert_redirect(self.get(m, "/x?y=1", IP["GB"]),
                                 "https://eu-west-a.meridian.test/x?y=1", "eu-west-a",
                                 "public_url's trailing slash dropped")
            self.assert_redirect(self.get(m, "/x?y=1", IP["US"]), "https://x.test/app/x?y=1",
                                 "us-east-a", "public_url with a path")


if __name__ == "__main__":
    unittest.main()
