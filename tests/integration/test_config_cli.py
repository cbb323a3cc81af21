"""tests/integration/test_config_cli.py: meridian's command line.

`meridian --version`, `meridian -t -c FILE` (exit 0 with "configuration OK",
or 1 with one line per error naming the JSON path) and `meridian -c FILE`
refusing to run a bad file. What an operator's deploy script depends on.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import MERIDIAN_BIN, deep_merge, free_port, region, write_config  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The harness default has health.timeout_ms 200 > interval_ms 100, which
# meridian refuses; every config here starts from a valid health section.
VALID = {"health": {"interval_ms": 1000, "timeout_ms": 200}}


def run(*args, timeout=10):
    return subprocess.run([MERIDIAN_BIN] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


class ConfigCliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mr-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def config(self, overrides=None, name="c"):
        path, cfg = write_config(os.path.join(self.dir, name), deep_merge(VALID, overrides))
        return path, cfg

    def edit(self, path, mutate):
        """Rewrites the JSON file at path through mutate(dict)."""
        with open(path) as f:
            cfg = json.load(f)
        mutate(cfg)
        with open(path, "w") as f:
            json.dump(cfg, f)

    def check_fails(self, path):
        """meridian -t on path: asserts exit 1, returns the error lines."""
        res = run("-t", "-c", path)
        self.assertEqual(res.returncode, 1, "exit code of -t on a bad file\nstdout: %s\nstderr: %s"
                         % (res.stdout, res.stderr))
        self.assertNotIn("configuration OK", res.stdout + res.stderr)
        return [l for l in (res.stdout + res.stderr).splitlines() if l.strip()]

    def test_version(self):
        res = run("--version")
        self.assertEqual(res.returncode, 0, res.stderr)
        with open(os.path.join(ROOT, "VERSION")) as f:
            version = f.read().strip()
        self.assertRegex(res.stdout.strip(), r"^meridian\s+" + re.escape(version) + r"$",
                         "--version prints the name and the VERSION file's version")

    def test_check_good_config(self):
        path, _ = self.config({
            "regions": [region("r1", {"a": (["127.0.0.1:%d" % free_port()], 3),
                                      "b": (["127.0.0.1:%d" % free_port()], 0)})],
            "routing": {"default": ["r1"], "endpoint_policy": "round_robin"},
            "limits": {"max_head_bytes": 8192, "max_headers": 50, "max_uri_bytes": 2048},
            "timeouts": {"client_header_ms": 300, "client_idle_ms": 500,
                         "upstream_connect_ms": 300, "upstream_response_ms": 800,
                         "upstream_idle_ms": 1000, "shutdown_grace_ms": 2000},
        })
        res = run("-t", "-c", path)
        self.assertEqual(res.returncode, 0, "a valid file (weight 0 included) passes -t:\n"
                         + res.stdout + res.stderr)
        self.assertEqual(res.stdout.strip(), "%s: configuration OK" % path,
                         "prints 'FILE: configuration OK'")

    def test_check_least_requests_policy_and_defaults(self):
        path, _ = self.config({"routing": {"default": ["local"],
                                           "endpoint_policy": "least_requests"}})
        res = run("-t", "-c", path)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        # No limits/timeouts sections at all: defaults apply.
        def strip(cfg):
            cfg.pop("timeouts", None)
            cfg.pop("limits", None)
            cfg["routing"].pop("endpoint_policy", None)
        self.edit(path, strip)
        res = run("-t", "-c", path)
        self.assertEqual(res.returncode, 0, "optional sections absent:\n" + res.stdout + res.stderr)

    def test_negative_weight_names_path(self):
        path, _ = self.config()
        self.edit(path, lambda c: c["regions"][0]["clusters"][0].__setitem__("weight", -1))
        lines = self.check_fails(path)
        self.assertTrue(any("regions[0].clusters[0].weight: expected a number >= 0" in l
                            for l in lines), "error line names the JSON path: %r" % lines)

    def test_one_line_per_error_each_naming_its_path(self):
        a1 = "127.0.0.1:%d" % free_port()
        path, _ = self.config({
            "regions": [region("r1", {"ok": [a1]}),
                        region("r2", {"x": [a1], "y": ([a1], "heavy")})],
            "routing": {"default": ["r1"], "endpoint_policy": "random"},
            "timeouts": {"client_header_ms": 0, "upstream_response_ms": "fast"},
            "limits": {"max_headers": 0},
        })
        lines = self.check_fails(path)
        expected = ["regions[1].clusters[1].weight", "routing.endpoint_policy",
                    "timeouts.client_header_ms", "timeouts.upstream_response_ms",
                    "limits.max_headers"]
        for p in expected:
            matching = [l for l in lines if p + ":" in l]
            self.assertEqual(len(matching), 1, "exactly one line for %s in %r" % (p, lines))
        self.assertEqual(len(lines), len(expected), "one line per error, nothing else: %r" % lines)

    def test_syntax_error(self):
        path = os.path.join(self.dir, "broken.json")
        with open(path, "w") as f:
            f.write('{"workers": 2,\n "listeners": [\n')
        res = run("-t", "-c", path)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertTrue((res.stdout + res.stderr).strip(), "says why")
        self.assertNotIn("configuration OK", res.stdout + res.stderr)

    def test_missing_file(self):
        res = run("-t", "-c", os.path.join(self.dir, "nope.json"))
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("nope.json", res.stdout + res.stderr, "names the file")

    def test_run_refuses_bad_config_and_never_listens(self):
        path, cfg = self.config()
        self.edit(path, lambda c: c["regions"][0]["clusters"][0].__setitem__("weight", -5))
        res = run("-c", path, timeout=10)
        self.assertNotEqual(res.returncode, 0, "meridian -c with a bad file exits non-zero")
        self.assertIn("regions[0].clusters[0].weight", res.stdout + res.stderr)
        host, port = cfg["listeners"][0]["address"].rsplit(":", 1)
        with self.assertRaises(OSError, msg="nothing listens after the refusal"):
            socket.create_connection((host, int(port)), timeout=1).close()

    def test_contract_example_checks_ok(self):
        example = os.path.join(ROOT, "conf", "examples", "edge.json")
        if not os.path.exists(example):
            self.skipTest("no conf/examples/edge.json")
        res = run("-t", "-c", example)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("configuration OK", res.stdout + res.stderr)


if __name__ == "__main__":
    unittest.main()
