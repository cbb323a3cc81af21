"""tests/integration/test_access_log_reopen.py: reopening the access log never
sends a log line into a socket.

Every publish (drain, weight, undo, reload) reopens the access log while the
writer thread keeps writing and workers accept and connect. If the old
descriptor were closed under the writer, accept() or connect() would reuse
its number (Linux hands out the lowest free one) and log lines would go to a
client or an origin. Under load with a weight change after another (each a
publish), every client must read a well-formed answer from the origin, the
origin must never see bytes that are not HTTP, and every request must have
its one line in the log file (a line written to a socket or a closed number
is missing from it).
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Meridian, OriginTestCase, RawConn, wait_for, write_config  # noqa: E402
from routing_helpers import AccessLog  # noqa: E402

CLIENTS = 6
PUBLISHES = 20000
BUDGET_S = 12.0
PADDING = "p" * 2000


class ReopenUnderLoadTest(OriginTestCase):
    ENDPOINTS = {"local-a": 1}
    TMP_PREFIX = "mr-alog-reopen-"

    def test_no_log_line_reaches_a_socket(self):
        path, cfg = write_config(self.tmp, {
            "health": {"interval_ms": 1000, "timeout_ms": 200},
            "regions": [{"name": "local", "lat": 0.0, "lon": 0.0, "clusters": [
                {"name": "local-a", "weight": 100, "endpoints": self.eps["local-a"]}]}],
        })
        stop = threading.Event()
        bad = []
        sent = [0] * CLIENTS

        def client(k):
            n = 0
            while not stop.is_set() and not bad:
                # Long lines: more batches for the writer, more reopens under it.
                target = "/reopen/%d/%d/%s" % (k, n, PADDING)
                n += 1
                try:
                    # A fresh connection each time: every accept() takes the
                    # lowest free descriptor, the one a stray close frees.
                    with RawConn("127.0.0.1", m.port, timeout=5) as c:
                        resp = c.request("GET", target, headers=[("Connection", "close")])
                except Exception as e:  # noqa: BLE001 - anything but HTTP is the bug
                    bad.append("%s: %r" % (target, e))
                    return
                sent[k] += 1
                if resp.status != 200 or resp.get("X-Origin-Cluster") != "local-a":
                    bad.append("%s: %r %r" % (target, resp, resp.body[:200]))
                    return

        with Meridian(path) as m:
            threads = [threading.Thread(target=client, args=(k,), daemon=True)
                       for k in range(CLIENTS)]
            for t in threads:
                t.start()
            publishes = 0
            deadline = time.monotonic() + BUDGET_S
            try:
                while publishes < PUBLISHES and time.monotonic() < deadline and not bad:
                    resp = m.admin("PUT", "/api/v1/clusters/local-a/weight",
                                   {"weight": 100 - publishes % 2})
                    self.assertEqual(resp.status, 200, resp.text)
                    publishes += 1
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=15)
            self.assertEqual(bad, [], "a client read something that is not the origin's "
                                      "answer (after %d publishes)" % publishes)
            self.assertNotIn("unparsable", self.origin.stderr_text(),
                             "the origin received bytes that are not HTTP")
            total = sum(sent)
            self.assertGreater(total, 0)
            log = AccessLog(cfg["access_log"])

            def logged():
                return len([e for e in log.entries()
                            if e.get("path", "").startswith("/reopen/")])
            wait_for(lambda: logged() >= total, timeout=5, raise_on_timeout=False)
            self.assertEqual(logged(), total, "every request has its line in the log file")


if __name__ == "__main__":
    unittest.main()
