"""tests/integration/test_routing_health.py: active health and the session
decision.

Endpoints' /healthz is flipped on the test origin (origin.set_health); the
checker (interval 100 ms, timeout 80 ms) marks them down after `fall`
failed checks and up after `rise` good ones. Checked, per docs/design.md's
"takes new sessions" / "keeps its sessions": a cluster whose endpoints are
down takes no new sessions and its sticky sessions move with a new cookie;
min_healthy decides when a partly-down cluster stops counting; only up
endpoints serve; restored health brings sessions back; with no candidate
region able to serve, fail open to any cluster with an endpoint up, and
with nothing up at all, 503 with Retry-After. Finally, a connect failure on
an endpoint not yet marked down is retried on another endpoint, or on
another cluster (with a new cookie) when the cluster has no other.
"""

import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Meridian, OriginTestCase, RawConn, addr, deep_merge, wait_for,  # noqa: E402
                     write_config)
from routing_helpers import (IP, AccessLog, cookie_fields, db, get, set_cookie,  # noqa: E402
                             set_cookies, sign_cookie, write_keys)

KEY = ("k1", bytes(range(7, 39)))
FAST = {"interval_ms": 100, "timeout_ms": 80, "rise": 1, "fall": 2, "min_healthy": 0.5}
# Checks too rare to mark a dead endpoint down during a test: the data
# path's retry is what serves.
SLOW = {"interval_ms": 60000, "timeout_ms": 1000, "rise": 1, "fall": 5, "min_healthy": 0.5}


class HealthTest(OriginTestCase):
    """eu {eu-a: a1 a2, eu-b: b1 b2}, us {us-a: u1}; GB clients -> [eu, us]."""

    ENDPOINTS = {"eu-a": 2, "eu-b": 2, "us-a": 1}
    TMP_PREFIX = "mr-health-"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        (cls.a1, cls.a2), (cls.b1, cls.b2), (cls.u1,) = (
            cls.eps["eu-a"], cls.eps["eu-b"], cls.eps["us-a"])

    def setUp(self):
        self.health(200, self.a1, self.a2, self.b1, self.b2, self.u1)

    def health(self, status, *endpoints):
        for ep in endpoints:
            self.origin.set_health(ep, status)

    def meridian(self, eps=None, health=None, overrides=None):
        eps = eps or self.eps

        def cl(name):
            return {"name": name, "weight": 100, "endpoints": eps[name]}
        cfg = {
            "workers": 1,
            "geoip": {"database": db("geoip2.mmdb")},
            "health": health or FAST,
            "regions": [
                {"name": "eu", "lat": 50.1, "lon": 8.7, "clusters": [cl("eu-a"), cl("eu-b")]},
                {"name": "us", "lat": 39.0, "lon": -77.5, "clusters": [cl("us-a")]},
            ],
            "routing": {"countries": {"GB": ["eu", "us"]}, "proximity": False,
                        "default": ["us", "eu"], "endpoint_policy": "round_robin"},
            "timeouts": {"upstream_connect_ms": 500},
        }
        d = tempfile.mkdtemp(dir=self.tmp)
        path, _ = write_config(d, deep_merge(cfg, overrides))
        write_keys(d, [KEY])
        return Meridian(path)

    def held(self, cluster):
        return "MRD=" + sign_cookie(KEY[0], KEY[1], cluster)

    def req(self, m, tag, cookie=None):
        path = "/%s-%d" % (tag, time.monotonic_ns())
        resp = get(m, path, IP["GB"], cookie=cookie)
        resp.path = path
        return resp

    def logged(self, m, resp):
        return AccessLog(m.config["access_log"]).entry(resp.path)

    def wait_served(self, m, tag, clusters, cookie=None, timeout=5):
        """Polls until a request (with cookie) is served by one of clusters."""
        return wait_for(lambda: (lambda r: r if r.status == 200 and
                                 r.get("X-Origin-Cluster") in clusters else None)(
            self.req(m, tag, cookie)), timeout=timeout, interval=0.05,
            message="%s: served by %s" % (tag, clusters))

    def assert_moved(self, m, resp, cluster, decision):
        """resp: a cookie holder sent to cluster with a new cookie for it."""
        self.assertEqual((resp.status, resp.get("X-Origin-Cluster")), (200, cluster))
        sc = set_cookie(resp)
        self.assertIsNotNone(sc, "moved session gets a new cookie")
        self.assertEqual(cookie_fields(sc[0])["cluster"], cluster)
        self.assertEqual(self.logged(m, resp)["decision"], decision)

    def new_sessions(self, m, tag, n=10):
        """Clusters serving n new sessions (each checked to carry its cookie)."""
        served = []
        for i in range(n):
            resp = self.req(m, "%s%d" % (tag, i))
            self.assertEqual(resp.status, 200, "%s: new session %d" % (tag, i))
            self.assertEqual(cookie_fields(set_cookie(resp)[0])["cluster"],
                             resp.get("X-Origin-Cluster"), "cookie names the serving cluster")
            served.append(resp.get("X-Origin-Cluster"))
        return served

    # ----------------------------------------------------------- cluster down

    def test_cluster_down_failover_and_back(self):
        held_a = self.held("eu-a")
        with self.meridian() as m:
            resp = self.req(m, "pre", held_a)
            self.assertEqual((resp.get("X-Origin-Cluster"), set_cookies(resp)), ("eu-a", []))

            # eu-a down: its holders move to eu-b (same region, geo).
            self.health(503, self.a1, self.a2)
            resp = self.wait_served(m, "a-down", ("eu-b",), held_a)
            self.assert_moved(m, resp, "eu-b", "geo")
            self.assertEqual(set(self.new_sessions(m, "a-down-new")), {"eu-b"},
                             "new sessions avoid the down cluster")

            # eu down altogether: us-a, decision failover.
            self.health(503, self.b1, self.b2)
            resp = self.wait_served(m, "eu-down", ("us-a",), held_a)
            self.assert_moved(m, resp, "us-a", "failover")
            resp = self.req(m, "eu-down-b", self.held("eu-b"))
            self.assert_moved(m, resp, "us-a", "failover")
            resp = self.req(m, "eu-down-new")
            self.assert_moved(m, resp, "us-a", "failover")

            # Restored: new sessions come back to eu, eu-a keeps its sessions again.
            self.health(200, self.a1, self.a2, self.b1, self.b2)
            self.wait_served(m, "back", ("eu-a",), held_a)
            wait_for(lambda: set(self.new_sessions(m, "back-new", 4)) <= {"eu-a", "eu-b"},
                     timeout=5, message="new sessions back in eu")
            served = self.new_sessions(m, "back-new2", 16)
            self.assertTrue(set(served) <= {"eu-a", "eu-b"}, "back in eu: %r" % served)
            resp = self.req(m, "back-held", held_a)
            self.assertEqual((resp.get("X-Origin-Cluster"), set_cookies(resp)), ("eu-a", []),
                             "eu-a holders sticky again")
            self.assertEqual(self.logged(m, resp)["decision"], "sticky")

    # ------------------------------------------------------------ min_healthy

    def test_min_healthy_one_endpoint_down_not_eligible(self):
        held_a = self.held("eu-a")
        with self.meridian(health=dict(FAST, min_healthy=1.0)) as m:
            self.health(503, self.a1)
            resp = self.wait_served(m, "mh1", ("eu-b",), held_a)
            self.assert_moved(m, resp, "eu-b", "geo")
            self.assertEqual(set(self.new_sessions(m, "mh1-new", 12)), {"eu-b"},
                             "eu-a with 1 of 2 endpoints up takes no new sessions")

    def test_min_healthy_half_still_eligible_up_endpoint_serves(self):
        held_a = self.held("eu-a")
        with self.meridian(health=dict(FAST, min_healthy=0.5)) as m:
            self.health(503, self.a1)
            with RawConn(port=m.port, timeout=5) as c:
                def only_a2():
                    eps = [c.request("GET", "/mh05", headers=[
                        ("X-Forwarded-For", IP["GB"]), ("Cookie", held_a)]).get("X-Origin-Endpoint")
                        for _ in range(4)]
                    return eps == [self.a2] * 4
                wait_for(only_a2, timeout=5, interval=0.05,
                         message="round robin avoids the down endpoint")
                for i in range(10):
                    resp = c.request("GET", "/mh05-%d" % i, headers=[
                        ("X-Forwarded-For", IP["GB"]), ("Cookie", held_a)])
                    self.assertEqual((resp.status, resp.get("X-Origin-Cluster"),
                                      resp.get("X-Origin-Endpoint")), (200, "eu-a", self.a2))
                    self.assertEqual(set_cookies(resp), [], "eu-a keeps its sessions")
            served = self.new_sessions(m, "mh05-new", 24)
            self.assertIn("eu-a", served, "eu-a still takes new sessions: %r" % served)

    # -------------------------------------------------------------- fail open

    def test_fail_open_to_cluster_with_an_endpoint_up(self):
        # min_healthy 1.0: eu-a (a2 up) is unhealthy as a cluster, eu-b and
        # us-a are down. No candidate region can take the session; eu-a
        # still has an endpoint up.
        with self.meridian(health=dict(FAST, min_healthy=1.0)) as m:
            self.health(503, self.a1, self.b1, self.b2, self.u1)

            # Until every one of a1, b1, b2, u1 is marked down, a request may
            # still land elsewhere: wait for four in a row on a2.
            wait_for(lambda: all(self.req(m, "fo-poll").get("X-Origin-Endpoint") == self.a2
                                 for _ in range(4)), timeout=5, interval=0.05,
                     message="only a2 serves")
            for i in range(5):
                resp = self.req(m, "fo%d" % i)
                self.assertEqual((resp.status, resp.get("X-Origin-Cluster"),
                                  resp.get("X-Origin-Endpoint")), (200, "eu-a", self.a2),
                                 "fail open to the one endpoint up, never an error")
            self.assert_moved(m, resp, "eu-a", "fail_open")
            resp = self.req(m, "fo-held", self.held("eu-b"))
            self.assert_moved(m, resp, "eu-a", "fail_open")

    def test_nothing_up_503_with_retry_after(self):
        with self.meridian() as m:
            self.health(503, self.a1, self.a2, self.b1, self.b2, self.u1)
            resp = wait_for(lambda: (lambda r: r if r.status == 503 else None)(
                self.req(m, "none-poll")), timeout=5, interval=0.05, message="503")
            retry_after = resp.get("Retry-After")
            self.assertIsNotNone(retry_after, "503 carries Retry-After: %r" % resp)
            self.assertTrue(retry_after.isdigit() and int(retry_after) > 0,
                            "Retry-After seconds: %r" % retry_after)
            self.assertEqual(set_cookies(resp), [], "no cookie for no cluster")
            resp = self.req(m, "none-held", self.held("eu-a"))
            self.assertEqual(resp.status, 503, "a cookie holder too")
            self.assertIsNotNone(resp.get("Retry-After"))
            e = self.logged(m, resp)
            self.assertEqual((e["status"], e["decision"]), (503, "none"))
            # And back.
            self.health(200, self.u1)
            resp = self.wait_served(m, "none-back", ("us-a",))
            self.assertEqual(self.logged(m, resp)["decision"], "failover")

    # ----------------------------------------------------------------- retry

    def assert_not_marked_down(self, m, endpoint):
        """The test setup held: the checker had not marked endpoint down, so
        the data path's retry is what served."""
        self.assertNotIn("health: eu-a %s down" % endpoint, m.stderr_text(),
                         "dead endpoint marked down already: the retry was not exercised")

    def test_connect_failure_retried_on_up_endpoint(self):
        dead = addr()
        held_a = self.held("eu-a")
        with self.meridian(eps=dict(self.eps, **{"eu-a": [dead, self.a1]}), health=SLOW) as m:
            for i in range(6):
                resp = self.req(m, "retry%d" % i, held_a)
                self.assertEqual((resp.status, resp.get("X-Origin-Cluster"),
                                  resp.get("X-Origin-Endpoint")), (200, "eu-a", self.a1),
                                 "GET %d retried on the live endpoint" % i)
                self.assertEqual(set_cookies(resp), [], "same cluster: no new cookie")
            self.assert_not_marked_down(m, dead)

    def test_connect_failure_retried_on_next_cluster(self):
        dead = addr()
        held_a = self.held("eu-a")
        with self.meridian(eps=dict(self.eps, **{"eu-a": [dead]}), health=SLOW) as m:
            resp = self.req(m, "retry-cl", held_a)
            self.assertEqual(resp.status, 200, "retried on another cluster, not 502")
            self.assertEqual(resp.get("X-Origin-Cluster"), "eu-b", "the next eligible cluster")
            sc = set_cookie(resp)
            self.assertIsNotNone(sc, "a new cookie for the cluster that served")
            self.assertEqual(cookie_fields(sc[0])["cluster"], "eu-b")
            again = self.req(m, "retry-cl2", "MRD=" + sc[0])
            self.assertEqual((again.get("X-Origin-Cluster"), set_cookies(again)), ("eu-b", []),
                             "the new cookie is sticky")
            self.assert_not_marked_down(m, dead)
            # New sessions that pick eu-a land on eu-b with an eu-b cookie.
            served = self.new_sessions(m, "retry-new", 8)
            self.assertEqual(set(served), {"eu-b"}, "%r" % served)


if __name__ == "__main__":
    unittest.main()
