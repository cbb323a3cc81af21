"""tests/integration/test_state_audit.py: runtime overrides that persist, and
the audit log with history and undo (docs/admin-api.md, docs/design.md).

- PersistenceTest: drains and weight overrides live in state_file, written
  atomically (always valid JSON, no temp files left beside it), restored at
  start and kept across reloads (admin API and SIGHUP); a corrupt state file,
  or one naming clusters that no longer exist, is reported on stderr and the
  rest applies.
- AuditTest: every change (drain, undrain, weight, reload, undo) is one JSON
  line in the audit log (default meridian-audit.jsonl beside the state file,
  or "audit_log"): time, the change, generations before and after, the
  previous value; refused calls and dry runs are not changes;
  GET /api/v1/history lists them newest first.
- UndoTest: POST /api/v1/undo reverts the last change not yet undone (drain,
  undrain, weight, reload -> the previous configuration text), is itself
  audited, persists, and answers 409 when nothing is left.

Real meridian and origins on loopback; stdlib only; every wait bounded.
"""

import json
import os
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (AdminStatus, Meridian, OriginTestCase, all_clusters, iso8601,  # noqa: E402
                     region, write_config)
from routing_helpers import IP, db, get, reload, sign_cookie, write_keys  # noqa: E402

KEY = ("k1", bytes(range(3, 35)))
CLUSTERS = ("eu-west-a", "eu-west-b", "us-east-a")
AUDIT_KEYS = ("time", "change", "cluster", "value", "previous", "generation_before",
              "generation_after")


class StateCase(AdminStatus, OriginTestCase):
    """eu-west {eu-west-a 50, eu-west-b 50}, us-east {us-east-a 100}; GB and
    the default route go to eu-west then us-east. The state file lives alone
    in DIR/st/ (with the default audit log beside it)."""

    CLUSTERS = CLUSTERS
    ENDPOINTS = {name: 1 for name in CLUSTERS}
    TMP_PREFIX = "mr-state-"
    ORIGIN_LOG = False

    def config(self, extra=None):
        cfg = {
            "geoip": {"database": db("geoip2.mmdb")},
            "health": {"interval_ms": 100, "timeout_ms": 80, "rise": 1, "fall": 1},
            "regions": [
                region("eu-west", {"eu-west-a": (self.eps["eu-west-a"], 50),
                                   "eu-west-b": (self.eps["eu-west-b"], 50)}, 53.35, -6.26),
                region("us-east", {"us-east-a": (self.eps["us-east-a"], 100)}, 39.04, -77.49),
            ],
            "routing": {"countries": {"GB": ["eu-west", "us-east"], "US": ["us-east"]},
                        "proximity": False, "default": ["eu-west", "us-east"]},
        }
        cfg.update(extra or {})
        return cfg

    def setup_dir(self, extra=None, state=None):
        """Writes a config (state file DIR/st/state.json) and returns its path;
        state: text to put in the state file beforehand."""
        d = tempfile.mkdtemp(dir=self.tmp)
        os.makedirs(os.path.join(d, "st"))
        cfg = self.config(extra)
        cfg.setdefault("state_file", os.path.join(d, "st", "state.json"))
        path, _ = write_config(d, cfg)
        write_keys(d, [KEY])
        if state is not None:
            with open(cfg["state_file"], "w") as f:
                f.write(state)
        return path

    def run_edge(self, path):
        m = Meridian(path)
        m.start()
        self.addCleanup(self.stop_edge, m)
        self.wait_healthy(m)
        return m

    def stop_edge(self, m):
        code = m.stop()
        report = m.sanitizer_report()
        if report:
            self.fail("sanitizer report:\n" + report)
        return code

    def change(self, m, method, path, body=None):
        before = self.gen(m)
        resp = m.admin(method, path, body)
        self.assertEqual(resp.status, 200, "%s %s %r -> %d %r"
                         % (method, path, body, resp.status, resp.body[:400]))
        ans = resp.json()
        self.assertEqual((ans.get("previous_generation"), ans.get("generation")),
                         (before, before + 1), "answer names the generations: %r" % ans)
        return ans

    def drain(self, m, name, **body):
        return self.change(m, "POST", "/api/v1/clusters/%s/drain" % name, body)

    def undrain(self, m, name):
        return self.change(m, "POST", "/api/v1/clusters/%s/undrain" % name, {})

    def weight(self, m, name, w):
        return self.change(m, "PUT", "/api/v1/clusters/%s/weight" % name, {"weight": w})

    def undo(self, m):
        return self.change(m, "POST", "/api/v1/undo")

    def state_path(self, m):
        return m.config["state_file"]

    def read_state(self, m):
        with open(self.state_path(m)) as f:
            return json.load(f)

    def audit_path(self, m):
        return m.config.get("audit_log") or os.path.join(
            os.path.dirname(self.state_path(m)), "meridian-audit.jsonl")

    def audit(self, m):
        try:
            with open(self.audit_path(m), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        self.assertTrue(data == b"" or data.endswith(b"\n"), "whole lines only")
        return [json.loads(line) for line in data.split(b"\n") if line]

    def history(self, m):
        resp = m.admin("GET", "/api/v1/history")
        self.assertEqual(resp.status, 200)
        return resp.json()["changes"]

    def landings(self, m, n=8, ip=IP["GB"]):
        seen = []
        for i in range(n):
            resp = get(m, "/land%d" % i, ip)
            self.assertEqual(resp.status, 200)
            seen.append(resp.get("X-Origin-Cluster"))
        return seen

    def rewrite(self, m, mutate):
        with open(m.config_path) as f:
            cfg = json.load(f)
        mutate(cfg)
        tmp = m.config_path + ".new"
        with open(tmp, "w") as f:
            json.dump(cfg, f, indent=2)
        os.replace(tmp, m.config_path)


# ------------------------------------------------------------- persistence

class PersistenceTest(StateCase):

    def test_overrides_survive_restart(self):
        path = self.setup_dir()
        m1 = self.run_edge(path)
        self.drain(m1, "eu-west-a", mode="soft", deadline_s=600)
        self.weight(m1, "us-east-a", 40)
        deadline = self.cluster(m1, "eu-west-a")["drain"]["deadline"]
        self.assertEqual(self.stop_edge(m1), 0)

        m2 = self.run_edge(path)
        st = all_clusters(self.status(m2))
        a = st["eu-west-a"]
        self.assertEqual((a["state"], a["drain"]["mode"]), ("draining", "soft"),
                         "the drain is back after a restart")
        self.assertEqual(a["drain"]["deadline"], deadline, "with its deadline, not a new one")
        self.assertFalse(a["takes_new_sessions"])
        self.assertEqual((st["us-east-a"]["weight"], st["us-east-a"]["configured_weight"]),
                         (40, 100), "the weight override is back")
        self.assertEqual(st["eu-west-b"]["drain"], None)
        self.assertEqual(set(self.landings(m2)), {"eu-west-b"}, "no new sessions on eu-west-a")
        resp = get(m2, "/sticky", IP["GB"],
                   cookie="MRD=" + sign_cookie(KEY[0], KEY[1], "eu-west-a"))
        self.assertEqual(resp.get("X-Origin-Cluster"), "eu-west-a", "a soft drain keeps sessions")

        self.drain(m2, "eu-west-b", mode="hard")
        self.undrain(m2, "eu-west-a")
        self.assertEqual(self.stop_edge(m2), 0)
        m3 = self.run_edge(path)
        st = all_clusters(self.status(m3))
        self.assertEqual((st["eu-west-b"]["state"], st["eu-west-b"]["drain"]["mode"]),
                         ("drained", "hard"))
        self.assertEqual((st["eu-west-a"]["state"], st["eu-west-a"]["drain"]),
                         ("active", None), "an undrain persists too")
        self.assertEqual(st["us-east-a"]["weight"], 40)

    def test_reload_keeps_overrides(self):
        m = self.run_edge(self.setup_dir())
        self.drain(m, "eu-west-a")
        self.weight(m, "eu-west-b", 20)

        def mutate(cfg):
            cfg["regions"][0]["clusters"][1]["weight"] = 70
            cfg["regions"][1]["clusters"][0]["weight"] = 30
        self.rewrite(m, mutate)
        self.change(m, "POST", "/api/v1/reload")
        st = all_clusters(self.status(m))
        self.assertEqual(st["eu-west-a"]["state"], "draining", "drain kept by an API reload")
        self.assertEqual((st["eu-west-b"]["weight"], st["eu-west-b"]["configured_weight"]),
                         (20, 70), "weight override kept, file's weight updated")
        self.assertEqual(st["us-east-a"]["weight"], 30, "no override: the file's new weight")
        gen = self.gen(m)
        self.assertIn("reloaded", reload(m))
        self.assertGreater(self.gen(m), gen)
        st = all_clusters(self.status(m))
        self.assertEqual(st["eu-west-a"]["state"], "draining", "drain kept by SIGHUP")
        self.assertEqual(st["eu-west-b"]["weight"], 20)
        state = self.read_state(m)
        self.assertEqual(state["clusters"]["eu-west-a"]["drain"]["mode"], "soft")
        self.assertEqual(state["clusters"]["eu-west-b"]["weight"], 20)
        self.assertEqual(set(self.landings(m, 6)), {"eu-west-b"})

    def test_state_file_written_atomically(self):
        m = self.run_edge(self.setup_dir())
        st_dir = os.path.dirname(self.state_path(m))
        bad, reads, stop = [], [0], threading.Event()

        def reader():
            while not stop.is_set():
                try:
                    with open(self.state_path(m), "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    continue
                reads[0] += 1
                try:
                    json.loads(data)
                except ValueError:
                    bad.append(data)
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            for i in range(8):
                self.drain(m, "eu-west-a", mode="hard" if i % 2 else "soft")
                state = self.read_state(m)
                self.assertEqual(state.get("version"), 1)
                self.assertEqual(state["clusters"]["eu-west-a"]["drain"]["mode"],
                                 "hard" if i % 2 else "soft")
                self.weight(m, "eu-west-b", 10 + i)
                self.assertEqual(self.read_state(m)["clusters"]["eu-west-b"]["weight"], 10 + i)
                self.undrain(m, "eu-west-a")
                self.assertIsNone(self.read_state(m)["clusters"].get("eu-west-a", {}).get("drain"),
                                  "an undrain removes the drain from the state file")
                self.assertEqual(sorted(os.listdir(st_dir)),
                                 ["meridian-audit.jsonl", "state.json"],
                                 "no temp files left beside the state file")
        finally:
            stop.set()
            t.join(timeout=5)
        self.assertGreater(reads[0], 0)
        self.assertEqual(bad, [], "every read of the state file was whole JSON (%d reads)"
                         % reads[0])

    def test_hand_written_state_and_unknown_cluster(self):
        state = ('{"version":1,"clusters":{"eu-west-a":{"drain":{"mode":"soft"}},'
                 '"gone":{"weight":3}}}')
        m = self.run_edge(self.setup_dir(state=state))
        a = self.cluster(m, "eu-west-a")
        self.assertEqual((a["state"], a["drain"]["mode"]), ("draining", "soft"),
                         "the known cluster's drain applies")
        self.assertFalse(a["takes_new_sessions"])
        self.assertNotIn("eu-west-a", self.landings(m, 6))
        err = m.stderr_text()
        self.assertTrue(any("gone" in line and ("warn" in line.lower() or "error" in line.lower())
                            for line in err.splitlines()),
                        "a warning names the unknown cluster:\n" + err)

    def test_corrupt_state_reported_not_discarded(self):
        garbage = "garbage{{ not json\n"
        m = self.run_edge(self.setup_dir(state=garbage))
        err = m.stderr_text()
        self.assertTrue(any("state" in line and ("error" in line.lower() or "warn" in line.lower())
                            for line in err.splitlines()),
                        "the corrupt state file is reported:\n" + err)
        st = all_clusters(self.status(m))
        self.assertEqual({n: c["state"] for n, c in st.items()},
                         dict.fromkeys(CLUSTERS, "active"), "the edge runs on the file's config")
        with open(self.state_path(m)) as f:
            self.assertEqual(f.read(), garbage, "not silently overwritten or removed at start")

    def test_partly_invalid_state_rest_applies(self):
        state = ('{"version":1,"clusters":{"eu-west-a":{"weight":-4},'
                 '"eu-west-b":{"weight":7},"us-east-a":{"drain":{"mode":"sideways"}}}}')
        m = self.run_edge(self.setup_dir(state=state))
        st = all_clusters(self.status(m))
        self.assertEqual(st["eu-west-b"]["weight"], 7, "the valid entry applies")
        self.assertEqual(st["eu-west-a"]["weight"], 50, "the invalid one does not")
        self.assertEqual(st["us-east-a"]["state"], "active")
        err = m.stderr_text()
        for name in ("eu-west-a", "us-east-a"):
            self.assertTrue(any(name in line and "state" in line for line in err.splitlines()),
                            "the bad entry for %s is reported:\n%s" % (name, err))


# -------------------------------------------------------------------- audit

class AuditTest(StateCase):

    def check_line(self, line, kind, cluster, ans):
        for key in AUDIT_KEYS:
            self.assertIn(key, line, "audit line has %s: %r" % (key, line))
        self.assertEqual((line["change"], line["cluster"]), (kind, cluster))
        self.assertEqual((line["generation_before"], line["generation_after"]),
                         (ans["previous_generation"], ans["generation"]), line)
        self.assertTrue(iso8601(line["time"]), "time: %r" % line["time"])

    def test_every_change_is_one_line(self):
        m = self.run_edge(self.setup_dir())
        self.assertEqual(os.path.dirname(self.audit_path(m)),
                         os.path.dirname(self.state_path(m)))
        self.assertEqual(self.audit(m), [])

        ans = self.drain(m, "eu-west-a", mode="soft")
        lines = self.audit(m)
        self.assertEqual(len(lines), 1, "one line per change: %r" % lines)
        self.check_line(lines[-1], "drain", "eu-west-a", ans)
        self.assertEqual(lines[-1]["value"]["drain"]["mode"], "soft")
        self.assertIsNone(lines[-1]["previous"]["drain"], "previous: no drain")
        self.assertEqual(lines[-1]["previous"]["weight"], 50)

        ans = self.undrain(m, "eu-west-a")
        lines = self.audit(m)
        self.assertEqual(len(lines), 2)
        self.check_line(lines[-1], "undrain", "eu-west-a", ans)
        self.assertEqual(lines[-1]["previous"]["drain"]["mode"], "soft",
                         "the previous value is the drain")
        self.assertIsNone(lines[-1]["value"]["drain"])

        ans = self.weight(m, "eu-west-b", 20)
        lines = self.audit(m)
        self.assertEqual(len(lines), 3)
        self.check_line(lines[-1], "weight", "eu-west-b", ans)
        self.assertEqual((lines[-1]["value"]["weight"], lines[-1]["previous"]["weight"]), (20, 50))

        ans = self.change(m, "POST", "/api/v1/reload")
        lines = self.audit(m)
        self.assertEqual(len(lines), 4)
        self.check_line(lines[-1], "reload", None, ans)

        hist = self.history(m)
        key = lambda e: (e["change"], e["cluster"], e["generation_before"], e["generation_after"])
        self.assertEqual([key(e) for e in hist[:4]], [key(e) for e in reversed(lines)],
                         "history: the audit lines, newest first")

    def test_refused_calls_and_dry_runs_not_audited(self):
        m = self.run_edge(self.setup_dir())
        self.drain(m, "eu-west-a")
        self.drain(m, "eu-west-b")
        n = len(self.audit(m))
        calls = [
            ("POST", "/api/v1/clusters/nope/drain", {}, 404),
            ("PUT", "/api/v1/clusters/eu-west-a/weight", {"weight": -1}, 400),
            ("GET", "/api/v1/clusters/eu-west-a/drain", None, 405),
            ("POST", "/api/v1/clusters/us-east-a/drain", {"mode": "soft"}, 409),
            ("PUT", "/api/v1/clusters/us-east-a/weight", {"weight": 0}, 409),
            ("POST", "/api/v1/clusters/us-east-a/drain", {"dry_run": True}, 200),
            ("PUT", "/api/v1/clusters/eu-west-b/weight", {"weight": 9, "dry_run": True}, 200),
            ("POST", "/api/v1/reload", None, 401),
        ]
        for method, path, body, code in calls:
            with self.subTest(call=(method, path, body)):
                resp = m.admin(method, path, body, token=(code != 401))
                self.assertEqual(resp.status, code, resp.body[:300])
                self.assertEqual(len(self.audit(m)), n, "no audit line")
        with open(m.config_path, "w") as f:
            f.write("{")
        self.assertEqual(m.admin("POST", "/api/v1/reload").status, 400)
        self.assertEqual(len(self.audit(m)), n, "a failed reload is not a change")

    def test_custom_audit_log_path(self):
        d = tempfile.mkdtemp(dir=self.tmp)
        custom = os.path.join(d, "logs", "changes.jsonl")
        os.makedirs(os.path.dirname(custom))
        m = self.run_edge(self.setup_dir(extra={"audit_log": custom}))
        ans = self.weight(m, "eu-west-a", 5)
        with open(custom) as f:
            lines = [json.loads(x) for x in f if x.strip()]
        self.assertEqual(len(lines), 1)
        self.check_line(lines[0], "weight", "eu-west-a", ans)
        default = os.path.join(os.path.dirname(self.state_path(m)), "meridian-audit.jsonl")
        self.assertFalse(os.path.exists(default), "nothing at the default path")

    def test_sighup_reload_is_audited(self):
        m = self.run_edge(self.setup_dir())
        gen = self.gen(m)
        self.assertIn("reloaded", reload(m))
        lines = self.audit(m)
        self.assertEqual(len(lines), 1, "a SIGHUP reload is a change too: %r" % lines)
        self.assertEqual((lines[0]["change"], lines[0]["generation_before"],
                          lines[0]["generation_after"]), ("reload", gen, gen + 1))

    def test_history_after_restart(self):
        # The history is "the audit lines, newest first"; the audit log
        # outlives the process.
        path = self.setup_dir()
        m1 = self.run_edge(path)
        self.drain(m1, "eu-west-a")
        self.weight(m1, "eu-west-b", 30)
        self.assertEqual(self.stop_edge(m1), 0)
        m2 = self.run_edge(path)
        self.weight(m2, "eu-west-b", 31)
        self.assertEqual(len(self.audit(m2)), 3, "the audit log is appended to, not replaced")
        hist = [(e["change"], e["cluster"]) for e in self.history(m2)]
        self.assertEqual(hist[:3], [("weight", "eu-west-b"), ("weight", "eu-west-b"),
                                    ("drain", "eu-west-a")],
                         "history includes the earlier run's changes")


# --------------------------------------------------------------------- undo

class UndoTest(StateCase):

    def test_undo_walks_back_then_409(self):
        m = self.run_edge(self.setup_dir())
        resp = m.admin("POST", "/api/v1/undo")
        self.assertEqual(resp.status, 409, "nothing to undo at start")
        self.assertIn("error", resp.json())
        self.drain(m, "eu-west-a")
        self.weight(m, "eu-west-b", 20)
        n = len(self.audit(m))

        ans = self.undo(m)
        self.assertIsInstance(ans.get("change"), dict)
        st = all_clusters(self.status(m))
        self.assertEqual(st["eu-west-b"]["weight"], 50, "the weight goes back")
        self.assertEqual(st["eu-west-a"]["state"], "draining", "the older drain stays")
        lines = self.audit(m)
        self.assertEqual(len(lines), n + 1, "undo is audited")
        self.assertEqual(lines[-1]["change"], "undo")
        self.assertEqual((lines[-1]["generation_before"], lines[-1]["generation_after"]),
                         (ans["previous_generation"], ans["generation"]))
        self.assertEqual(self.history(m)[0]["change"], "undo", "newest first")
        self.assertNotIn("weight", self.read_state(m)["clusters"].get("eu-west-b", {}),
                         "the state file follows the undo")

        self.undo(m)
        a = self.cluster(m, "eu-west-a")
        self.assertEqual((a["state"], a["drain"]), ("active", None), "the drain is undone")
        self.assertIn("eu-west-a", self.landings(m, 12), "it takes new sessions again")
        gen = self.gen(m)
        resp = m.admin("POST", "/api/v1/undo")
        self.assertEqual(resp.status, 409, "nothing left to undo: %r" % resp.body)
        self.assertIsInstance(resp.json().get("error"), str)
        self.assertEqual(self.gen(m), gen, "a refused undo changes nothing")
        self.assertEqual(len(self.audit(m)), n + 2)

    def test_undo_undrain_and_hard_drain(self):
        m = self.run_edge(self.setup_dir())
        self.drain(m, "eu-west-b", mode="hard", deadline_s=300)
        self.undrain(m, "eu-west-b")
        self.undo(m)
        b = self.cluster(m, "eu-west-b")
        self.assertEqual((b["state"], b["drain"]["mode"]), ("drained", "hard"),
                         "undoing an undrain brings the drain back")
        self.undo(m)
        self.assertEqual(self.cluster(m, "eu-west-b")["state"], "active")

    def test_undo_reload_restores_previous_configuration(self):
        m = self.run_edge(self.setup_dir())
        self.drain(m, "eu-west-b")  # a runtime override, independent of the file
        self.assertEqual(set(self.landings(m, 4)), {"eu-west-a"})
        self.rewrite(m, lambda c: c["routing"]["countries"].__setitem__("GB", ["us-east"]))
        with open(m.config_path) as f:
            new_text = f.read()
        self.change(m, "POST", "/api/v1/reload")
        self.assertEqual(set(self.landings(m, 4)), {"us-east-a"}, "the new routing runs")

        ans = self.undo(m)
        self.assertEqual(set(self.landings(m, 4)), {"eu-west-a"}, "the old routing is back")
        ex = m.admin("GET", "/api/v1/explain?ip=" + IP["GB"]).json()
        self.assertEqual([c["region"] for c in ex["candidates"]][:2], ["eu-west", "us-east"])
        self.assertEqual(ex["generation"], ans["generation"])
        self.assertEqual(self.cluster(m, "eu-west-b")["state"], "draining",
                         "overrides stay across the undone reload")
        with open(m.config_path) as f:
            self.assertEqual(f.read(), new_text, "the file on disk is not touched")
        self.assertEqual(self.audit(m)[-1]["change"], "undo")

    def test_undo_persists_across_restart(self):
        path = self.setup_dir()
        m1 = self.run_edge(path)
        self.weight(m1, "us-east-a", 10)
        self.drain(m1, "eu-west-a")
        self.undo(m1)
        self.assertEqual(self.stop_edge(m1), 0)
        m2 = self.run_edge(path)
        st = all_clusters(self.status(m2))
        self.assertEqual(st["eu-west-a"]["state"], "active", "the undone drain stays undone")
        self.assertEqual(st["us-east-a"]["weight"], 10, "the earlier change stays")


if __name__ == "__main__":
    unittest.main(verbosity=2)
