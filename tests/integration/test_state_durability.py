"""tests/integration/test_state_durability.py: a change's answer says what
happened to the state file.

The state file is written to a temporary file, synced, renamed into place,
then its directory is synced. When only that last sync fails (here forced by
preloading build/VARIANT/tests/faildirsync.so, which fails fsync() of a
directory with EIO), the file already holds the change and a restart would
apply it: the change runs now (200, the new weight in status and in the
file, in the audit log) and the answer carries a warning that it may not
survive a crash, which meridianctl prints. A failure before the rename
changes nothing, and says so (500).

meridian creates the missing directories above state_file and audit_log
(mode 0750) at start and at reload, so a relative state_file such as the
example's "state/meridian-state.json" works in a fresh checkout; a directory
that cannot be created is an error naming the key, and meridian does not
start (or the reload is refused).
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import Meridian, OriginTestCase, write_config  # noqa: E402

PRELOAD = os.path.join(os.path.dirname(os.path.abspath(harness.ORIGIN_BIN)), "tests",
                       "faildirsync.so")


def cluster_weight(m, name):
    status = m.admin("GET", "/api/v1/status").json()
    for region in status["regions"]:
        for cluster in region["clusters"]:
            if cluster["name"] == name:
                return cluster["weight"]
    raise AssertionError("no cluster %s in status" % name)


class PreloadedMeridian(Meridian):
    """meridian with faildirsync.so preloaded (not the tests' other tools)."""

    def start(self, timeout=10.0):
        saved = dict(os.environ)
        os.environ["LD_PRELOAD"] = PRELOAD
        # ASan accepts a library preloaded before its own runtime.
        os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                      ":verify_asan_link_order=0").lstrip(":")
        try:
            return super().start(timeout)
        finally:
            os.environ.clear()
            os.environ.update(saved)


class DirectorySyncFailureTest(OriginTestCase):
    ENDPOINTS = {"local-a": 1}
    TMP_PREFIX = "mr-durable-"

    def write(self, directory):
        path, cfg = write_config(directory, {
            "regions": [{"name": "local", "lat": 0.0, "lon": 0.0, "clusters": [
                {"name": "local-a", "weight": 100, "endpoints": self.eps["local-a"]}]}],
            "state_file": os.path.join(directory, "state", "state.json"),
            "audit_log": os.path.join(directory, "audit.jsonl"),
        })
        return PreloadedMeridian(path), cfg

    def test_change_after_rename_is_applied_with_a_warning(self):
        self.assertTrue(os.path.exists(PRELOAD), PRELOAD)
        m, cfg = self.write(os.path.join(self.tmp, "after"))
        with m:
            resp = m.admin("PUT", "/api/v1/clusters/local-a/weight", {"weight": 40})
            self.assertEqual(resp.status, 200, resp.text)
            ans = resp.json()
            self.assertEqual(len(ans.get("warnings", [])), 1, ans)
            warning = ans["warnings"][0]
            self.assertIn("cannot sync the directory of %s" % cfg["state_file"], warning)
            self.assertIn("may not survive a crash", warning)
            self.assertEqual(ans["generation"], ans["previous_generation"] + 1, ans)
            self.assertEqual(cluster_weight(m, "local-a"), 40, "the change runs")
            with open(cfg["state_file"]) as f:
                self.assertEqual(json.load(f)["clusters"]["local-a"]["weight"], 40,
                                 "and is in the file a restart reads")
            with open(cfg["audit_log"]) as f:
                self.assertEqual(len(f.read().splitlines()), 1, "and in the audit log")
            out = m.ctl("weight", "local-a", "60")
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("warning: state_file: cannot sync the directory", out.stderr)
            self.assertEqual(cluster_weight(m, "local-a"), 60)

    def test_failure_before_rename_changes_nothing(self):
        m, cfg = self.write(os.path.join(self.tmp, "before"))
        with m:
            shutil.rmtree(os.path.dirname(cfg["state_file"]))
            resp = m.admin("PUT", "/api/v1/clusters/local-a/weight", {"weight": 40})
            self.assertEqual(resp.status, 500, resp.text)
            self.assertIn("(nothing changed)", resp.json()["error"])
            self.assertEqual(cluster_weight(m, "local-a"), 100, "the running weight stays")


class StateDirectoryTest(OriginTestCase):
    ENDPOINTS = {"local-a": 1}
    TMP_PREFIX = "mr-statedir-"

    def write(self, name, overrides):
        return write_config(os.path.join(self.tmp, name), dict({
            "regions": [{"name": "local", "lat": 0.0, "lon": 0.0, "clusters": [
                {"name": "local-a", "weight": 100, "endpoints": self.eps["local-a"]}]}],
        }, **overrides))

    def test_missing_directories_are_created(self):
        path, cfg = self.write("fresh", {"state_file": "state/sub/meridian-state.json"})
        state_dir = os.path.join(os.path.dirname(path), "state")
        self.assertFalse(os.path.exists(state_dir))
        with Meridian(path) as m:
            for d in (state_dir, os.path.join(state_dir, "sub")):
                self.assertTrue(os.path.isdir(d), "%s created at start" % d)
                self.assertEqual(stat.S_IMODE(os.stat(d).st_mode) & 0o777, 0o750, d)
            resp = m.admin("PUT", "/api/v1/clusters/local-a/weight", {"weight": 40})
            self.assertEqual(resp.status, 200, resp.text)
            with open(os.path.join(state_dir, "sub", "meridian-state.json")) as f:
                self.assertEqual(json.load(f)["clusters"]["local-a"]["weight"], 40)
            self.assertTrue(os.path.exists(os.path.join(state_dir, "sub",
                                                        "meridian-audit.jsonl")))

    def test_uncreatable_directories_are_errors(self):
        blocker = os.path.join(self.tmp, "blocker")
        with open(blocker, "w") as f:
            f.write("a file where a directory would go\n")
        path, cfg = self.write("blocked", {
            "state_file": os.path.join(blocker, "state.json"),
            "audit_log": os.path.join(blocker, "logs", "audit.jsonl"),
        })
        try:
            res = subprocess.run([harness.MERIDIAN_BIN, "-c", path], capture_output=True,
                                 text=True, timeout=10)
        except subprocess.TimeoutExpired:
            self.fail("meridian kept running without its state directory")
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("state_file: cannot create directory %s: Not a directory" % blocker,
                      res.stderr)
        self.assertIn("audit_log: cannot create directory %s/logs: Not a directory" % blocker,
                      res.stderr)

    def test_reload_to_an_uncreatable_directory_is_refused(self):
        path, cfg = self.write("reload", {})
        blocker = os.path.join(self.tmp, "blocker-reload")
        with open(blocker, "w") as f:
            f.write("x\n")
        with Meridian(path) as m:
            cfg["state_file"] = os.path.join(blocker, "state.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            resp = m.admin("POST", "/api/v1/reload", {})
            self.assertEqual(resp.status, 400, resp.text)
            self.assertIn("state_file: cannot create directory %s: Not a directory" % blocker,
                          resp.json()["errors"])
            resp = m.admin("PUT", "/api/v1/clusters/local-a/weight", {"weight": 40})
            self.assertEqual(resp.status, 200, "the running state_file stays: %s" % resp.text)


if __name__ == "__main__":
    unittest.main()
