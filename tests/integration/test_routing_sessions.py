"""tests/integration/test_routing_sessions.py: the signed sticky cookie,
weights and drains.

The first request of a session gets Set-Cookie MRD (HMAC-SHA256 signed,
v1.<kid>.<b64url(cluster)>.<issued>.<expires>.<b64url(mac)>); replaying it
keeps the session on its cluster ("sticky") whatever the client's location
says now. Forged, truncated, expired, unknown-key and re-targeted cookies are
ignored (a new decision, never an error). Key rotation by reload. Weights
split new sessions; weight 0 and drains (config file + SIGHUP) stop new
sessions while keeping, or moving, existing ones as docs/design.md defines
"takes new sessions" and "keeps its sessions".

The tests write session.keys themselves, so they can sign cookies of their
own (routing_helpers.sign_cookie) to reach states quickly.
"""

import collections
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Meridian, OriginTestCase, RawConn, deep_merge, wait_for, write_config  # noqa: E402
from routing_helpers import (IP, AccessLog, b64url, cookie_fields, db, get, reload,  # noqa: E402
                             rewrite_config, set_cookie, set_cookies, sign_cookie, write_keys)

K1 = ("k1", bytes(range(1, 33)))
K2 = ("k2", bytes(range(101, 141)))
MAX_AGE = 86400


class SessionTest(OriginTestCase):
    """Regions eu {eu-a, eu-b} and us {us-a}; GB and DE clients go to eu,
    US clients to us."""

    ENDPOINTS = {"eu-a": 1, "eu-b": 1, "us-a": 1}
    TMP_PREFIX = "mr-sess-"

    def config(self, weights=None, drains=None, overrides=None):
        weights = dict({"eu-a": 100, "eu-b": 100, "us-a": 100}, **(weights or {}))
        drains = drains or {}

        def cl(name):
            c = {"name": name, "weight": weights[name], "endpoints": self.eps[name]}
            if name in drains:
                c["drain"] = drains[name]
            return c
        cfg = {
            "geoip": {"database": db("geoip2.mmdb")},
            "health": {"interval_ms": 1000, "timeout_ms": 200},
            "session": {"max_age_s": MAX_AGE},
            "regions": [
                {"name": "eu", "lat": 50.1, "lon": 8.7, "clusters": [cl("eu-a"), cl("eu-b")]},
                {"name": "us", "lat": 39.0, "lon": -77.5, "clusters": [cl("us-a")]},
            ],
            "routing": {"countries": {"GB": ["eu", "us"], "US": ["us", "eu"]},
                        "continents": {"EU": ["eu", "us"]},
                        "proximity": False, "default": ["us", "eu"]},
        }
        return deep_merge(cfg, overrides)

    def meridian(self, keys=(K1,), **kw):
        d = tempfile.mkdtemp(dir=self.tmp)
        path, _ = write_config(d, self.config(**kw))
        write_keys(d, keys)
        return Meridian(path)

    def cookie(self, cluster, key=K1, **kw):
        return sign_cookie(key[0], key[1], cluster, **kw)

    def reconfigure(self, m, keys=None, **kw):
        """Rewrites m's config (and keys) and reloads; asserts it took."""
        if keys is not None:
            write_keys(m.dir, keys)
        rewrite_config(m, deep_merge(m.config, self.config(**kw)))
        verdict = reload(m)
        self.assertIn("reloaded", verdict)

    def assert_sticky(self, m, value, cluster, ip=IP["GB"], tag="sticky"):
        path = "/%s-%d" % (tag, time.monotonic_ns())
        resp = get(m, path, ip, cookie="MRD=" + value)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.get("X-Origin-Cluster"), cluster,
                         "%s: cookie keeps %s" % (tag, cluster))
        self.assertEqual(set_cookies(resp), [], "%s: no new Set-Cookie for a sticky session" % tag)
        e = AccessLog(m.config["access_log"]).entry(path)
        self.assertEqual(e["decision"], "sticky", "%s: logged decision" % tag)
        self.assertEqual(e["cluster"], cluster)
        return resp

    def assert_new_decision(self, m, cookie_header, clusters, decisions=("geo",), ip=IP["GB"],
                            tag="new", log=True):
        """A request whose cookie (if any) is not honoured: 200, served by one
        of clusters, a fresh Set-Cookie naming it. Returns the new value."""
        path = "/%s-%d" % (tag, time.monotonic_ns())
        resp = get(m, path, ip, cookie=cookie_header)
        self.assertEqual(resp.status, 200, "%s: never an error" % tag)
        served = resp.get("X-Origin-Cluster")
        self.assertIn(served, clusters, "%s: served by" % tag)
        sc = set_cookie(resp)
        self.assertIsNotNone(sc, "%s: a fresh Set-Cookie" % tag)
        self.assertEqual(cookie_fields(sc[0])["cluster"], served, "%s: new cookie names %s"
                         % (tag, served))
        if log:  # the log is flushed every ~100 ms: loops check it once
            e = AccessLog(m.config["access_log"]).entry(path)
            self.assertIn(e["decision"], decisions, "%s: logged decision" % tag)
            self.assertEqual(e["cluster"], served)
        return sc[0]

    # ------------------------------------------------------------ the cookie

    def test_first_request_sets_signed_cookie(self):
        with self.meridian() as m:
            before = int(time.time())
            resp = get(m, "/first", IP["GB"])
            after = int(time.time())
            self.assertEqual(resp.status, 200)
            served = resp.get("X-Origin-Cluster")
            self.assertIn(served, ("eu-a", "eu-b"))
            headers = set_cookies(resp)
            self.assertEqual(len(headers), 1, "one Set-Cookie: %r" % headers)
            value, attrs = set_cookie(resp)
            self.assertEqual(attrs, ["Max-Age=%d" % MAX_AGE, "Path=/", "HttpOnly", "SameSite=Lax"],
                             "attributes of %r" % headers[0])
            f = cookie_fields(value)
            self.assertEqual((f["kid"], f["cluster"]), ("k1", served))
            self.assertTrue(before - 1 <= f["issued"] <= after + 1, "issued is now: %r" % f)
            self.assertEqual(f["expires"] - f["issued"], MAX_AGE, "expires = issued + max_age_s")
            self.assertEqual(value, self.cookie(served, issued=f["issued"], expires=f["expires"]),
                             "HMAC-SHA256 with the first key over the fields")
            self.assertEqual(AccessLog(m.config["access_log"]).entry("/first")["decision"], "geo")

    def test_secure_attribute(self):
        with self.meridian(overrides={"session": {"secure": True}}) as m:
            value, attrs = set_cookie(get(m, "/secure", IP["GB"]))
            self.assertIn("Secure", attrs, "session.secure adds Secure: %r" % attrs)
            self.assertIn("HttpOnly", attrs)
            self.assertIn("SameSite=Lax", attrs)

    def test_replayed_cookie_is_sticky_whatever_the_location(self):
        with self.meridian() as m:
            value = set_cookie(get(m, "/s0", IP["GB"]))[0]
            cluster = cookie_fields(value)["cluster"]
            self.assert_sticky(m, value, cluster, IP["GB"], "same-client")
            # A US client would now be sent to us-a: the cookie wins.
            self.assert_sticky(m, value, cluster, IP["US"], "moved-client")
            self.assert_sticky(m, value, cluster, None, "unknown-client")
            with RawConn(port=m.port, timeout=5) as c:
                for i in range(3):
                    resp = c.request("GET", "/ka%d" % i, headers=[
                        ("X-Forwarded-For", IP["US"]), ("Cookie", "MRD=" + value)])
                    self.assertEqual((resp.status, resp.get("X-Origin-Cluster")), (200, cluster))
                    self.assertEqual(set_cookies(resp), [])

    def test_signed_cookie_for_another_cluster_is_sticky(self):
        # Our own signature is as good as meridian's: a GB client holding a
        # valid cookie for us-a stays on us-a.
        with self.meridian() as m:
            self.assert_sticky(m, self.cookie("us-a"), "us-a", IP["GB"], "crafted")

    def test_other_cookies_reach_origin_untouched(self):
        with self.meridian() as m:
            value = self.cookie("us-a")
            header = "theme=dark; MRD=%s; sid=abc.123; empty=" % value
            resp = get(m, "/cookies", IP["GB"], cookie=header)
            self.assertEqual((resp.status, resp.get("X-Origin-Cluster")), (200, "us-a"))
            self.assertEqual(resp.json()["headers"].get("cookie"), header,
                             "Cookie header forwarded unchanged, MRD included")
            # A first request with other cookies only: they pass, MRD is set.
            resp = get(m, "/cookies2", IP["GB"], cookie="a=1; b=2")
            self.assertEqual(resp.json()["headers"].get("cookie"), "a=1; b=2")
            self.assertIsNotNone(set_cookie(resp), "new session gets MRD")

    def test_invalid_cookies_ignored(self):
        now = int(time.time())
        good = self.cookie("us-a")
        mac_at = good.rindex(".") + 10
        flipped = good[:mac_at] + ("A" if good[mac_at] != "A" else "B") + good[mac_at + 1:]
        parts = good.split(".")
        retargeted = ".".join(parts[:2] + [b64url(b"eu-b")] + parts[3:])
        cases = {
            "forged mac": flipped,
            "truncated": good[:len(good) // 2],
            "mac dropped": good[:good.rindex(".")],
            "expired": self.cookie("us-a", issued=now - 100, expires=now - 10),
            "unknown key": sign_cookie("k9", os.urandom(32), "us-a"),
            "re-targeted": retargeted,
            "other version": "v2" + good[2:],
            "garbage": "not-a-cookie",
            "empty": "",
            "no such cluster": self.cookie("nowhere"),
        }
        with self.meridian() as m:
            self.assert_sticky(m, good, "us-a", IP["GB"], "control")
            for name, value in cases.items():
                with self.subTest(name):
                    # GB -> eu: the ignored cookie named us-a (eu-b when re-targeted).
                    self.assert_new_decision(m, "MRD=" + value, ("eu-a", "eu-b"),
                                             tag=name.replace(" ", "_"))
            self.assertTrue(m.running())

    def test_key_rotation(self):
        with self.meridian(keys=(K1,)) as m:
            old = set_cookie(get(m, "/r0", IP["GB"]))[0]
            self.assertEqual(cookie_fields(old)["kid"], "k1")
            cluster = cookie_fields(old)["cluster"]
            # A new first key: old cookies still verify, new ones carry k2.
            self.reconfigure(m, keys=(K2, K1))
            self.assert_sticky(m, old, cluster, IP["US"], "old-after-add")
            new = self.assert_new_decision(m, None, ("us-a",), ip=IP["US"], tag="new-after-add")
            f = cookie_fields(new)
            self.assertEqual(f["kid"], "k2", "new cookies signed with the new first key")
            self.assertEqual(new, self.cookie("us-a", key=K2, issued=f["issued"],
                                              expires=f["expires"]))
            # The old key removed: its cookies are ignored, k2 ones stay.
            self.reconfigure(m, keys=(K2,))
            fresh = self.assert_new_decision(m, "MRD=" + old, ("eu-a", "eu-b"), tag="old-after-rm")
            self.assertEqual(cookie_fields(fresh)["kid"], "k2")
            self.assert_sticky(m, new, "us-a", IP["GB"], "new-after-rm")

    # --------------------------------------------------------------- weights

    def test_weighted_split_of_new_sessions(self):
        n = 400
        with self.meridian(weights={"eu-a": 300, "eu-b": 100}) as m:
            counts = collections.Counter()
            with RawConn(port=m.port, timeout=5) as c:
                for i in range(n):
                    resp = c.request("GET", "/w%d" % i, headers=[("X-Forwarded-For", IP["DE"])])
                    self.assertEqual(resp.status, 200)
                    served = resp.get("X-Origin-Cluster")
                    self.assertEqual(cookie_fields(set_cookie(resp)[0])["cluster"], served)
                    counts[served] += 1
            # 3:1 -> 300 expected, sd ~8.7: +-40 is over 4.5 sd.
            self.assertEqual(set(counts), {"eu-a", "eu-b"}, "both clusters: %r" % counts)
            self.assertTrue(260 <= counts["eu-a"] <= 340, "3:1 split of %d: %r" % (n, counts))

    def test_weight_zero_keeps_sessions_takes_no_new(self):
        with self.meridian(weights={"eu-a": 100, "eu-b": 100}) as m:
            # A real eu-b session first.
            def eu_b_cookie():
                sc = set_cookie(get(m, "/find-b", IP["GB"]))
                return sc[0] if sc and cookie_fields(sc[0])["cluster"] == "eu-b" else None
            value = wait_for(eu_b_cookie, timeout=5, interval=0, message="an eu-b session")
            self.reconfigure(m, weights={"eu-b": 0})
            for i in range(30):
                self.assert_new_decision(m, None, ("eu-a",), tag="w0-new%d" % i, log=i == 0)
            self.assert_sticky(m, value, "eu-b", IP["GB"], "w0-sticky")
            self.assert_sticky(m, self.cookie("eu-b"), "eu-b", IP["GB"], "w0-crafted")

    # ---------------------------------------------------------------- drains

    def test_soft_drain_without_deadline(self):
        with self.meridian() as m:
            held = self.cookie("eu-a")
            self.assert_sticky(m, held, "eu-a", IP["GB"], "pre")
            self.reconfigure(m, drains={"eu-a": {"mode": "soft"}})
            for i in range(20):
                self.assert_new_decision(m, None, ("eu-b",), tag="soft-new%d" % i, log=i == 0)
            self.assert_sticky(m, held, "eu-a", IP["GB"], "soft-held")
            # The whole region drained: new sessions fail over to us.
            self.reconfigure(m, drains={"eu-a": {"mode": "soft"}, "eu-b": {"mode": "soft"}})
            for i in range(5):
                self.assert_new_decision(m, None, ("us-a",), ("failover",), tag="soft-fo%d" % i,
                                         log=i == 0)
            self.assert_sticky(m, held, "eu-a", IP["GB"], "soft-held2")
            self.assert_sticky(m, self.cookie("eu-b"), "eu-b", IP["GB"], "soft-held-b")
            # Undrain: back to normal.
            self.reconfigure(m)
            self.assert_new_decision(m, None, ("eu-a", "eu-b"), tag="undrained")

    def test_soft_drain_with_deadline(self):
        with self.meridian() as m:
            held = self.cookie("eu-a")
            # Reload late in a wall-clock second: a deadline counted in whole
            # seconds of time() would then fall due ~0.15 s after the load,
            # not deadline_s (1 s) after it.
            wait_for(lambda: 0.80 <= time.time() % 1 <= 0.85, timeout=2, interval=0.005)
            self.reconfigure(m, drains={"eu-a": {"mode": "soft", "deadline_s": 1}})
            start = time.monotonic()
            self.assert_sticky(m, held, "eu-a", IP["GB"], "before-deadline")
            self.assert_new_decision(m, None, ("eu-b",), tag="dl-new")

            def moved():
                resp = get(m, "/dl-poll", IP["GB"], cookie="MRD=" + held)
                return (resp, time.monotonic()) if resp.get("X-Origin-Cluster") != "eu-a" else None
            resp, when = wait_for(moved, timeout=4, interval=0.02,
                                  message="cookie holders move after deadline_s 1")
            self.assertGreater(when - start, 0.85,
                               "sessions kept until deadline_s (1 s) after the reload")
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.get("X-Origin-Cluster"), "eu-b")
            sc = set_cookie(resp)
            self.assertIsNotNone(sc, "a new cookie after the deadline")
            self.assertEqual(cookie_fields(sc[0])["cluster"], "eu-b")
            self.assert_new_decision(m, "MRD=" + held, ("eu-b",), tag="after-deadline")
            self.assert_sticky(m, sc[0], "eu-b", IP["GB"], "new-cookie")

    def test_hard_drain_moves_sessions_at_once(self):
        with self.meridian() as m:
            held = self.cookie("eu-a")
            self.assert_sticky(m, held, "eu-a", IP["GB"], "pre-hard")
            self.reconfigure(m, drains={"eu-a": {"mode": "hard"}})
            for i in range(5):
                moved = self.assert_new_decision(m, "MRD=" + held, ("eu-b",), tag="hard%d" % i,
                                                 log=i == 0)
            self.assert_sticky(m, moved, "eu-b", IP["GB"], "hard-new-cookie")
            # A hard-drained cluster's holders from another country: their
            # own geo decides (US -> us-a).
            self.assert_new_decision(m, "MRD=" + held, ("us-a",), ip=IP["US"], tag="hard-us")


if __name__ == "__main__":
    unittest.main()
