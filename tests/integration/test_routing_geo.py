"""tests/integration/test_routing_geo.py: the new-session decision by location.

The client address comes from X-Forwarded-For (the loopback peer is a
trusted proxy); the test databases (tools/mkmmdb.pl, built into
BUILD/testdata) map it to a country, continent and coordinates. Checked:
routing.countries before routing.continents before the nearest region
(great-circle, routing.proximity) before routing.default; unknown clients
(loopback, private) take routing.default; IPv6 and IPv4-mapped clients;
both database schemas (GeoIP2 paths by default, the contract's flat
["country_code"]); the access log's decision and country; a missing
database refused by `meridian -t` and by a reload; a database replaced on
disk picked up by a reload.
"""

import math
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (MERIDIAN_BIN, Meridian, OriginTestCase, addr, deep_merge, region,  # noqa: E402
                     wait_for, write_config)
from routing_helpers import IP, AccessLog, db, get, reload, rewrite_config  # noqa: E402

# Region coordinates: Frankfurt, Ashburn, Singapore, Sao Paulo.
REGIONS = {"eu": (50.11, 8.68), "us": (39.04, -77.49), "ap": (1.35, 103.82),
           "sa": (-23.55, -46.63)}

# Client coordinates in geoip2.mmdb (tools/mkmmdb.pl).
CLIENT_COORDS = {"SG": (1.29, 103.85), "ZA": (-26.20, 28.04), "JP": (35.69, 139.69),
                 "BR": (-23.55, -46.63), "AU": (-33.87, 151.21), "IN": (19.08, 72.88)}

# GB's country rule deliberately names "ap" first: neither its continent
# (EU -> eu), nor proximity (eu), nor the default (us) would pick it.
ROUTING = {
    "countries": {"GB": ["ap", "eu"], "US": ["us", "eu"]},
    "continents": {"EU": ["eu", "us"]},
    "proximity": True,
    "default": ["us", "eu"],
}

FLAT_PATHS = {"country": ["country_code"], "latitude": ["location", "latitude"],
              "longitude": ["location", "longitude"]}


def great_circle_km(a, b):
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def nearest(coords):
    """(nearest region, margin in km to the second nearest)."""
    ranked = sorted((great_circle_km(coords, c), name) for name, c in REGIONS.items())
    return ranked[0][1], ranked[1][0] - ranked[0][0]


class GeoTest(OriginTestCase):
    TMP_PREFIX = "mr-geo-"

    @classmethod
    def origin_clusters(cls):
        cls.eps = {name: addr() for name in REGIONS}
        return {name + "-a": [ep] for name, ep in cls.eps.items()}

    def config(self, geoip, overrides=None):
        regions = [region(name, {name + "-a": [self.eps[name]]}, lat, lon)
                   for name, (lat, lon) in REGIONS.items()]
        cfg = {"geoip": geoip, "regions": regions, "routing": ROUTING,
               "health": {"interval_ms": 1000, "timeout_ms": 200}}
        return deep_merge(cfg, overrides)

    def meridian(self, geoip, overrides=None):
        path, _ = write_config(tempfile.mkdtemp(dir=self.tmp), self.config(geoip, overrides))
        return Meridian(path)

    def check_routes(self, m, cases, tag, generation=None):
        """cases: [(client ip or None, region, country or None)]. Each client's
        first request goes to REGION-a, logged as a "geo" decision with the
        country."""
        sent = []
        for i, (ip, want_region, _) in enumerate(cases):
            path = "/%s-%d" % (tag, i)
            resp = get(m, path, ip)
            self.assertEqual(resp.status, 200, "%s: status" % ip)
            self.assertEqual(resp.get("X-Origin-Cluster"), want_region + "-a",
                             "client %s goes to region %s" % (ip, want_region))
            sent.append(path)
        log = AccessLog(m.config["access_log"])
        entries = wait_for(lambda: (lambda e: e if all(p in e for p in sent) else None)(
            {e["path"]: e for e in log.entries()}), timeout=5,
            message="access log lines for %s" % tag)
        for path, (ip, want_region, want_country) in zip(sent, cases):
            e = entries[path]
            with self.subTest(client=ip):
                self.assertEqual(e["decision"], "geo", "%s: decision" % ip)
                self.assertEqual(e["region"], want_region, "%s: logged region" % ip)
                self.assertEqual(e["cluster"], want_region + "-a", "%s: logged cluster" % ip)
                self.assertEqual(e["country"], want_country, "%s: logged country" % ip)
                if generation is not None:
                    self.assertEqual(e["generation"], generation, "%s: generation" % ip)
        return entries

    # ------------------------------------------------------------- the rules

    def test_country_rule_takes_its_first_region(self):
        with self.meridian({"database": db("geoip2.mmdb")}) as m:
            self.check_routes(m, [(IP["GB"], "ap", "GB"), (IP["US"], "us", "US")], "country")

    def test_continent_rule(self):
        with self.meridian({"database": db("geoip2.mmdb")}) as m:
            self.check_routes(m, [(IP["DE"], "eu", "DE"), (IP["FR"], "eu", "FR")], "continent")

    def test_proximity_picks_nearest_region(self):
        cases = []
        for country in ("SG", "ZA", "JP", "BR", "AU", "IN"):
            want, margin = nearest(CLIENT_COORDS[country])
            self.assertGreater(margin, 300, "test setup: %s has a clear nearest region" % country)
            cases.append((IP[country], want, country))
        self.assertEqual([c[1] for c in cases[:2]], ["ap", "sa"], "test setup")
        with self.meridian({"database": db("geoip2.mmdb")}) as m:
            self.check_routes(m, cases, "near")

    def test_proximity_off_takes_default(self):
        with self.meridian({"database": db("geoip2.mmdb")},
                           {"routing": {"proximity": False}}) as m:
            self.check_routes(m, [(IP["SG"], "us", "SG"), (IP["ZA"], "us", "ZA"),
                                  (IP["GB"], "ap", "GB"), (IP["DE"], "eu", "DE")], "noprox")

    def test_unknown_client_takes_default(self):
        with self.meridian({"database": db("geoip2.mmdb")}) as m:
            # None: no X-Forwarded-For, the client is the loopback peer itself.
            self.check_routes(m, [(None, "us", None), (IP["PRIVATE"], "us", None),
                                  ("192.168.7.7", "us", None), ("fd00::7", "us", None)],
                              "unknown")

    def test_ipv6_and_ipv4_mapped_clients(self):
        with self.meridian({"database": db("geoip2.mmdb")}) as m:
            entries = self.check_routes(m, [(IP["GB6"], "ap", "GB"), (IP["DE6"], "eu", "DE"),
                                            (IP["GB_MAPPED"], "ap", "GB")], "v6")
            self.assertEqual(entries["/v6-0"]["client"], IP["GB6"], "IPv6 client logged")
            self.assertIn(entries["/v6-2"]["client"], (IP["GB"], IP["GB_MAPPED"]),
                          "IPv4-mapped client logged")

    def test_flat_schema_contract_paths(self):
        # Country only: the continent and the coordinates come from the
        # country tables (centroid), as with the contract's CC0 database.
        geoip = dict(FLAT_PATHS, database=db("flat.mmdb"))
        with self.meridian(geoip) as m:
            self.check_routes(m, [(IP["GB"], "ap", "GB"), (IP["GB6"], "ap", "GB"),
                                  (IP["DE"], "eu", "DE"), (IP["FR"], "eu", "FR"),
                                  (IP["SG"], "ap", "SG"), (IP["ZA"], "sa", "ZA"),
                                  (IP["BR"], "sa", "BR"), (IP["PRIVATE"], "us", None)], "flat")

    # --------------------------------------------------- database lifecycle

    def test_missing_database_refused_by_check(self):
        d = tempfile.mkdtemp(dir=self.tmp)
        missing = os.path.join(d, "nope.mmdb")
        path, _ = write_config(d, self.config({"database": missing}))
        proc = subprocess.run([MERIDIAN_BIN, "-t", "-c", path], capture_output=True,
                              text=True, timeout=10)
        self.assertEqual(proc.returncode, 1, "meridian -t exit code; output:\n%s%s"
                         % (proc.stdout, proc.stderr))
        lines = (proc.stdout + proc.stderr).splitlines()
        self.assertTrue(any(line.startswith("geoip.database: cannot open") for line in lines),
                        "a line starting 'geoip.database: cannot open': %r" % lines)

    def test_reload_with_missing_database_refused(self):
        with self.meridian({"database": db("geoip2.mmdb")}) as m:
            self.check_routes(m, [(IP["GB"], "ap", "GB")], "before", generation=1)
            cfg = deep_merge(m.config, {"geoip": {"database": os.path.join(m.dir, "gone.mmdb")}})
            rewrite_config(m, cfg)
            verdict = reload(m)
            self.assertIn("reload refused", verdict, "reload with a missing database")
            self.assertTrue(m.running(), "still running")
            self.check_routes(m, [(IP["GB"], "ap", "GB"), (IP["DE"], "eu", "DE"),
                                  (IP["SG"], "ap", "SG")], "after", generation=1)

    def test_database_replaced_on_disk_picked_up_by_reload(self):
        d = tempfile.mkdtemp(dir=self.tmp)
        live = os.path.join(d, "geo.mmdb")
        # The flat database read with the default GeoIP2 paths finds no
        # country: every client is unknown and takes routing.default.
        shutil.copyfile(db("flat.mmdb"), live)
        path, _ = write_config(d, self.config({"database": live}))
        with Meridian(path) as m:
            self.check_routes(m, [(IP["GB"], "us", None), (IP["SG"], "us", None)], "old",
                              generation=1)
            tmp = live + ".new"
            shutil.copyfile(db("geoip2.mmdb"), tmp)
            os.replace(tmp, live)
            self.check_routes(m, [(IP["GB"], "us", None)], "notyet", generation=1)
            verdict = reload(m)
            self.assertIn("reloaded", verdict)
            self.check_routes(m, [(IP["GB"], "ap", "GB"), (IP["DE"], "eu", "DE"),
                                  (IP["SG"], "ap", "SG")], "new", generation=2)
            # And back: the flat database with its own paths.
            shutil.copyfile(db("flat.mmdb"), tmp)
            os.replace(tmp, live)
            rewrite_config(m, deep_merge(m.config, {"geoip": dict(FLAT_PATHS, database=live)}))
            self.assertIn("reloaded", reload(m))
            self.check_routes(m, [(IP["GB"], "ap", "GB"), (IP["ZA"], "sa", "ZA")], "flat",
                              generation=3)


if __name__ == "__main__":
    unittest.main()
