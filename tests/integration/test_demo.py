"""tests/integration/test_demo.py: `make run`'s demo works as the README says.

Runs tools/demo.sh (the command behind `make run`) on the contract example's
fixed ports, then checks what a new user would try: a request answered by a
demo cluster with a session cookie, a GB client routed to eu-west by the
real CC0 GeoIP database, the admin API and dashboard with the example token,
and a clean stop on Ctrl-C.
"""

import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = open(os.path.join(ROOT, "conf/examples/admin.token")).read().strip()


class DemoTest(unittest.TestCase):
    def setUp(self):
        env = dict(os.environ, DEMO_BIN_DIR=os.path.dirname(os.path.abspath(harness.MERIDIAN_BIN)))
        self.proc = subprocess.Popen(["bash", "tools/demo.sh"], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)

        def answering():
            if self.proc.poll() is not None:
                raise AssertionError("demo exited early: " + self.proc.stderr.read().decode())
            try:
                return harness.request(8080, "GET", "/", timeout=1).status == 200
            except OSError:
                return False
        harness.wait_for(answering, timeout=15, interval=0.05, message="demo edge on :8080")

    def tearDown(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc.stderr.close()

    def test_demo_routes_and_operates(self):
        resp = harness.request(8080, "GET", "/")
        self.assertEqual(resp.status, 200)
        self.assertIn(resp.get("X-Origin-Cluster"),
                      {"eu-west-a", "eu-west-b", "us-east-a", "ap-south-a"})
        self.assertTrue(resp.get("Set-Cookie", "").startswith("MRD=v1."))

        gb = harness.request(8080, "GET", "/", headers={"X-Forwarded-For": "81.2.69.142"})
        self.assertTrue(gb.get("X-Origin-Cluster", "").startswith("eu-west-"),
                        "a GB client goes to eu-west in the example")

        self.assertEqual(harness.request(9090, "GET", "/healthz").status, 200)
        auth = {"Authorization": "Bearer " + TOKEN}
        status = harness.request(9090, "GET", "/api/v1/status", headers=auth)
        self.assertEqual(status.status, 200)
        names = {c["name"] for r in status.json()["regions"] for c in r["clusters"]}
        self.assertEqual(names, {"eu-west-a", "eu-west-b", "us-east-a", "ap-south-a"})
        page = harness.request(9090, "GET", "/")
        self.assertEqual(page.status, 200)
        self.assertIn(b"meridian", page.body)

    def test_ctrl_c_stops_cleanly(self):
        os.killpg(self.proc.pid, signal.SIGINT)
        self.assertEqual(self.proc.wait(timeout=15), 0)
        with self.assertRaises(OSError):
            harness.request(8080, "GET", "/", timeout=1)


if __name__ == "__main__":
    unittest.main()
