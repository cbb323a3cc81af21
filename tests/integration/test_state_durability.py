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
"""

import json
import os
import shutil
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


class DirectorySyncFailureTest(OriginTestCase):
    ENDPOINTS = {"local-a": 1}
    TMP_PREFIX = "mr-durable-"

    def start(self, directory):
        path, cfg = write_config(directory, {
            "regions": [{"name": "local", "lat": 0.0, "lon": 0.0, "clusters": [
                {"name": "local-a", "weight": 100, "endpoints": self.eps["local-a"]}]}],
            "state_file": os.path.join(directory, "state", "state.json"),
            "audit_log": os.path.join(directory, "audit.jsonl"),
        })
        os.makedirs(os.path.dirname(cfg["state_file"]), exist_ok=True)
        saved = dict(os.environ)
        # Only meridian gets the library; ASan accepts it after its own runtime.
        os.environ["LD_PRELOAD"] = PRELOAD
        os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                      ":verify_asan_link_order=0").lstrip(":")
        try:
            return Meridian(path).start(), cfg
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def test_change_after_rename_is_applied_with_a_warning(self):
        self.assertTrue(os.path.exists(PRELOAD), PRELOAD)
        m, cfg = self.start(os.path.join(self.tmp, "after"))
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
        m, cfg = self.start(os.path.join(self.tmp, "before"))
        with m:
            shutil.rmtree(os.path.dirname(cfg["state_file"]))
            resp = m.admin("PUT", "/api/v1/clusters/local-a/weight", {"weight": 40})
            self.assertEqual(resp.status, 500, resp.text)
            self.assertIn("(nothing changed)", resp.json()["error"])
            self.assertEqual(cluster_weight(m, "local-a"), 100, "the running weight stays")


if __name__ == "__main__":
    unittest.main()
