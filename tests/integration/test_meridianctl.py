"""tests/integration/test_meridianctl.py: meridianctl, the admin API's client.

Three layers, so a failure says where the fault is:

- CtlUsageTest: the command line alone (usage errors exit 2 before any
  request; unreachable admin, bad URL, unreadable token file exit 2).
- CtlWireTest: meridianctl against a stub admin API that records each
  request and answers canned bytes: the request bodies and headers of
  docs/admin-api.md, Content-Length / chunked / close-delimited answers,
  refusals (exit 1, "meridianctl: refused: MESSAGE"), the printouts.
- CtlEdgeTest: meridianctl against a real meridian and real origins: status,
  drain (and where traffic goes afterwards), undrain, weight, the guardrail,
  explain, reload, history, undo, the environment variables.

Exit codes are the contract scripts rely on: 0 done, 1 refused by the edge,
2 usage or connection error.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (MERIDIAN_BIN, MERIDIANCTL_BIN, Meridian, OriginTestCase, RawConn,  # noqa: E402
                     free_port, ipv6_loopback, region, wait_for, write_config)

GB_CLIENT = "81.2.69.142"  # GB in the geoip2 test database (tools/mkmmdb.pl)
TESTDATA = os.environ.get("MERIDIAN_TESTDATA") or os.path.join(
    os.path.dirname(os.path.abspath(MERIDIAN_BIN)), "testdata")
GEOIP_DB = os.path.join(TESTDATA, "geoip2.mmdb")

GEN_CHANGE = re.compile(r"generation (\d+) -> (\d+)")


def ctl(*args, env=None, timeout=30.0):
    """Runs meridianctl with exactly args; the environment has no MERIDIAN_*
    variables unless env adds them. Returns the CompletedProcess (text)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MERIDIAN_")}
    full_env.update(env or {})
    return subprocess.run([MERIDIANCTL_BIN] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=full_env, stdin=subprocess.DEVNULL)


def show(res):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (res.returncode, res.stdout, res.stderr)


# ------------------------------------------------------------- stub admin

class StubAdmin:
    """An admin API stand-in on a loopback port. Each connection: one request
    read (head + Content-Length body) and recorded, then the next queued
    answer (raw bytes) sent and the connection closed. Default answer: 200 {}."""

    def __init__(self, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.host = host
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.requests = []
        self.answers = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d" % (host, self.port)

    def answer(self, raw):
        self.answers.append(raw)

    def answer_json(self, status, obj, chunked=False, reason="X"):
        body = json.dumps(obj).encode()
        head = "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n" % (status, reason)
        if chunked:
            pieces = [body[i:i + 7] for i in range(0, len(body), 7)]
            data = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"
            head += "Transfer-Encoding: chunked\r\n"
        else:
            data = body
            head += "Content-Length: %d\r\n" % len(body)
        self.answers.append(head.encode() + b"Connection: close\r\n\r\n" + data)

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self._handle(conn)
                except OSError:
                    pass

    def _handle(self, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            piece = conn.recv(65536)
            if not piece:
                return
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            piece = conn.recv(65536)
            if not piece:
                break
            body += piece
        self.requests.append({"method": method, "target": target, "version": version,
                              "headers": headers, "body": body})
        raw = self.answers.pop(0) if self.answers else (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        conn.sendall(raw)

    def close(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()


STATUS_EXAMPLE = {
    "generation": 3, "config": "/path/edge.json", "started": "2026-11-27T08:00:00Z",
    "regions": [
        {"name": "eu-west", "lat": 53.35, "lon": -6.26, "clusters": [
            {"name": "eu-west-a", "state": "active", "healthy": True,
             "endpoints_up": 2, "endpoints_total": 2, "weight": 50, "configured_weight": 50,
             "drain": None, "takes_new_sessions": True, "keeps_sessions": True,
             "traffic": {"requests": 120, "active_connections": 3, "new_sessions": 40,
                         "sticky_hits": 80},
             "endpoints": [
                 {"address": "127.0.0.1:18101", "health": "up", "since": "2026-11-27T08:00:01Z",
                  "last_check": "HTTP 200", "traffic": {"requests": 60, "active_connections": 1}},
                 {"address": "127.0.0.1:18102", "health": "down",
                  "since": "2026-11-27T08:00:02Z", "last_check": "HTTP 503",
                  "traffic": {"requests": 60, "active_connections": 2}}]},
            {"name": "eu-west-b", "state": "draining", "healthy": True,
             "endpoints_up": 1, "endpoints_total": 1, "weight": 0, "configured_weight": 50,
             "drain": {"mode": "soft", "deadline": None, "deadline_s": None},
             "takes_new_sessions": False, "keeps_sessions": True,
             "traffic": {"requests": 7, "active_connections": 0, "new_sessions": 0,
                         "sticky_hits": 7},
             "endpoints": [
                 {"address": "127.0.0.1:18111", "health": "up", "since": "2026-11-27T08:00:01Z",
                  "last_check": "HTTP 200", "traffic": {"requests": 7, "active_connections": 0}}]},
        ]},
        {"name": "us-east", "lat": 39.04, "lon": -77.49, "clusters": [
            {"name": "us-east-a", "state": "down", "healthy": False,
             "endpoints_up": 0, "endpoints_total": 1, "weight": 100, "configured_weight": 100,
             "drain": None, "takes_new_sessions": False, "keeps_sessions": False,
             "traffic": {"requests": 0, "active_connections": 0, "new_sessions": 0,
                         "sticky_hits": 0},
             "endpoints": [
                 {"address": "127.0.0.1:18201", "health": "down", "since": None,
                  "last_check": "connection refused",
                  "traffic": {"requests": 0, "active_connections": 0}}]},
        ]},
    ],
}

EXPLAIN_EXAMPLE = {
    "generation": 3, "ip": GB_CLIENT,
    "location": {"found": True, "country": "GB", "continent": "EU", "lat": 51.5, "lon": -0.1},
    "cookie": {"present": True, "result": "valid", "cluster": "eu-west-a"},
    "candidates": [{"region": "eu-west", "rule": "country",
                    "clusters": [{"name": "eu-west-a", "eligible": True, "reason": None},
                                 {"name": "eu-west-b", "eligible": False, "reason": "drained"}]}],
    "decision": "geo", "region": "eu-west", "cluster": "eu-west-a",
}

HISTORY_EXAMPLE = {"changes": [
    {"time": "2026-11-27T08:05:00Z", "change": "weight", "cluster": "eu-west-a",
     "value": {"drain": None, "weight": 0}, "previous": {"drain": None, "weight": 50},
     "generation_before": 4, "generation_after": 5, "undone": False},
    {"time": "2026-11-27T08:04:00Z", "change": "drain", "cluster": "eu-west-b",
     "value": {"drain": {"mode": "soft", "deadline": None}, "weight": 50},
     "previous": {"drain": None, "weight": 50},
     "generation_before": 3, "generation_after": 4, "undone": False},
    {"time": "2026-11-27T08:03:00Z", "change": "reload", "cluster": None,
     "value": {}, "previous": None, "generation_before": 2, "generation_after": 3,
     "undone": True},
]}


# ------------------------------------------------------------ command line

class CtlUsageTest(unittest.TestCase):
    """What meridianctl decides alone, before or without any answer."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mr-ctl-")
        self.stub = StubAdmin()

    def tearDown(self):
        self.stub.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assert_usage_error(self, *args):
        res = ctl("--admin", self.stub.url, *args)
        self.assertEqual(res.returncode, 2, "usage error %r exits 2\n%s" % (args, show(res)))
        self.assertTrue(res.stderr.startswith("meridianctl: "), "message on stderr: %r" % (args,))
        self.assertEqual(res.stdout, "", "nothing on stdout for %r" % (args,))
        return res

    def test_help_lists_everything(self):
        res = ctl("--help")
        self.assertEqual(res.returncode, 0, show(res))
        for word in ("status", "drain", "undrain", "weight", "reload", "explain", "history",
                     "undo", "--admin", "--token-file", "--json", "--hard", "--deadline",
                     "--dry-run", "--force", "--cookie", "MERIDIAN_ADMIN",
                     "MERIDIAN_TOKEN_FILE"):
            self.assertIn(word, res.stdout, "--help mentions %s" % word)

    def test_usage_errors_exit_2_and_send_nothing(self):
        cases = [
            (),                                   # no command
            ("frobnicate",),                      # unknown command
            ("drain",),                           # missing CLUSTER
            ("undrain",),
            ("weight", "eu-west-a"),              # missing N
            ("weight", "eu-west-a", "abc"),       # N not a number
            ("weight", "eu-west-a", "-1"),        # N negative
            ("weight", "eu-west-a", "1x"),
            ("weight", "eu-west-a", "nan"),
            ("weight", "eu-west-a", ""),
            ("explain",),                         # missing IP
            ("status", "extra"),                  # too many arguments
            ("drain", "a", "b"),
            ("status", "--hard"),                 # option of another command
            ("explain", GB_CLIENT, "--force"),
            ("drain", "eu-west-a", "--deadline"),         # option without its value
            ("drain", "eu-west-a", "--deadline", "soon"),
            ("drain", "eu-west-a", "--deadline", "0"),
            ("--bogus", "status"),                # unknown option
        ]
        for args in cases:
            with self.subTest(args=args):
                self.assert_usage_error(*args)
        self.assertEqual(self.stub.requests, [], "usage errors send no request")

    def test_option_words_are_exact(self):
        # Each word is an option only as spelled in --help: no abbreviation,
        # no cluster of short options, no value for a flag; the message names
        # the word (up to its "=").
        hint = "\n(meridianctl --help lists the commands and options)\n"
        cases = [
            (("--adm", self.stub.url, "status"), "unknown option --adm"),
            (("--admi=" + self.stub.url, "status"), "unknown option --admi"),
            (("--jso", "status"), "unknown option --jso"),
            (("--hel",), "unknown option --hel"),
            (("--help=1",), "unknown option --help"),
            (("--version=1",), "unknown option --version"),
            (("-h=1",), "unknown option -h"),
            (("-hx",), "unknown option -hx"),
            (("-admin", self.stub.url), "unknown option -admin"),
            (("status", "---json"), "unknown option ---json"),
            (("status", "-.x"), "unknown option -.x"),
            (("--json=1", "status"), "--json takes no value"),
            (("--hard=", "drain", "a"), "--hard takes no value"),
            (("status", "--token-file"), "--token-file needs a value"),
            (("drain", "a", "--deadline=-5"),
             "--deadline: expected a whole number of seconds >= 1, not '-5'"),
            (("weight", "a", "-5"), "weight: N must be a non-negative number, not '-5'"),
            (("weight", "a", "-.5"), "weight: N must be a non-negative number, not '-.5'"),
            (("status", "--", "--json"), "status takes no arguments"),
            (("--", "--json"), "unknown command '--json'"),
            (("-",), "unknown command '-'"),
            (("--bogus", "--help"), "unknown option --bogus"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                res = ctl(*args)
                self.assertEqual((res.returncode, res.stdout, res.stderr),
                                 (2, "", "meridianctl: " + message + hint), show(res))
        self.assertEqual(self.stub.requests, [], "usage errors send no request")

    def test_help_and_version_stop_at_once(self):
        helped = ctl("--help")
        for args in (("-h",), ("status", "--help"), ("--help", "--bogus"),
                     ("--admin", "ftp://x", "-h", "frobnicate")):
            with self.subTest(args=args):
                res = ctl(*args)
                self.assertEqual((res.returncode, res.stdout, res.stderr),
                                 (0, helped.stdout, ""), show(res))
        res = ctl("--version", "--bogus")
        self.assertEqual(res.returncode, 0, show(res))
        self.assertRegex(res.stdout, r"^meridianctl \d+\.\d+\.\d+\n$")
        res = ctl()
        self.assertEqual((res.returncode, res.stdout), (2, ""), show(res))
        self.assertEqual(res.stderr, "meridianctl: no command given\n" + helped.stdout,
                         "no arguments: the message, then the usage on stderr")

    def test_weight_message_names_the_value(self):
        res = self.assert_usage_error("weight", "x", "abc")
        self.assertIn("abc", res.stderr, "the bad N is quoted")

    def test_connection_refused_exits_2(self):
        port = free_port()  # nothing listens there
        res = ctl("--admin", "http://127.0.0.1:%d" % port, "status")
        self.assertEqual(res.returncode, 2, show(res))
        self.assertIn("cannot connect", res.stderr)
        self.assertIn("127.0.0.1:%d" % port, res.stderr, "the message names the address")

    def test_connection_refused_from_env(self):
        port = free_port()
        res = ctl("status", env={"MERIDIAN_ADMIN": "http://127.0.0.1:%d" % port})
        self.assertEqual(res.returncode, 2, show(res))
        self.assertIn("127.0.0.1:%d" % port, res.stderr, "MERIDIAN_ADMIN is used")

    def test_silent_admin_times_out_exit_2(self):
        # Listening but never accepting: the connect completes in the backlog,
        # the answer never comes; meridianctl gives up after its 10 s timeout.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(4)
            res = ctl("--admin=http://127.0.0.1:%d" % silent.getsockname()[1], "status",
                      timeout=25)
        self.assertEqual(res.returncode, 2, show(res))
        self.assertIn("10 s", res.stderr, "the message says it timed out")

    def test_bad_admin_url_exits_2(self):
        for url in ("https://127.0.0.1:9090", "ftp://x", "127.0.0.1:9090", "http://",
                    "http://127.0.0.1:0", "http://127.0.0.1:70000", "http://127.0.0.1:x",
                    "http://[::1", "http://u@127.0.0.1:9090"):
            with self.subTest(url=url):
                res = ctl("--admin", url, "status")
                self.assertEqual(res.returncode, 2, show(res))
                self.assertIn("admin URL", res.stderr)
        self.assertEqual(self.stub.requests, [])

    def test_unreadable_token_file_exits_2(self):
        missing = os.path.join(self.tmp, "no-such.token")
        res = ctl("--admin", self.stub.url, "--token-file", missing, "status")
        self.assertEqual(res.returncode, 2, show(res))
        self.assertIn(missing, res.stderr, "the message names the file")
        res = ctl("--admin", self.stub.url, "status", env={"MERIDIAN_TOKEN_FILE": missing})
        self.assertEqual(res.returncode, 2, "MERIDIAN_TOKEN_FILE is read\n" + show(res))
        empty = os.path.join(self.tmp, "empty.token")
        with open(empty, "w") as f:
            f.write("  \n")
        res = ctl("--admin", self.stub.url, "--token-file", empty, "status")
        self.assertEqual(res.returncode, 2, "an empty token file\n" + show(res))
        self.assertEqual(self.stub.requests, [], "no request without the token asked for")


# ------------------------------------------------------------ on the wire

class CtlWireTest(unittest.TestCase):
    """Requests and printouts, against a stub admin API."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mr-ctl-")
        self.stub = StubAdmin()

    def tearDown(self):
        self.stub.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_ctl(self, *args, expect=0, env=None):
        res = ctl("--admin", self.stub.url, *args, env=env)
        self.assertEqual(res.returncode, expect, "meridianctl %r\n%s" % (args, show(res)))
        return res

    def only_request(self):
        self.assertEqual(len(self.stub.requests), 1, "one request: %r" % self.stub.requests)
        return self.stub.requests[0]

    def test_status_request_and_table(self):
        self.stub.answer_json(200, STATUS_EXAMPLE)
        res = self.run_ctl("status")
        req = self.only_request()
        self.assertEqual((req["method"], req["target"], req["version"]),
                         ("GET", "/api/v1/status", "HTTP/1.1"))
        self.assertEqual(req["headers"].get("connection", "").lower(), "close")
        self.assertEqual(req["headers"].get("host"), "127.0.0.1:%d" % self.stub.port)
        self.assertNotIn("authorization", req["headers"], "no token, no Authorization header")
        lines = res.stdout.splitlines()
        self.assertIn("generation 3", lines[0], "header line with the generation")
        head = [l for l in lines if l.startswith("REGION")]
        self.assertEqual(len(head), 1, "one column header line:\n" + res.stdout)
        for col in ("CLUSTER", "STATE", "HEALTH", "WEIGHT", "DRAIN", "REQUESTS", "ACTIVE"):
            self.assertIn(col, head[0])
        rows = {l.split()[1]: l.split() for l in lines
                if l and not l.startswith(" ") and len(l.split()) > 1
                and l.split()[0] in ("eu-west", "us-east")}
        self.assertEqual(set(rows), {"eu-west-a", "eu-west-b", "us-east-a"}, res.stdout)
        self.assertEqual(rows["eu-west-a"][:4], ["eu-west", "eu-west-a", "active", "2/2"])
        self.assertEqual(rows["eu-west-a"][-2:], ["120", "3"], "requests and active")
        self.assertEqual(rows["us-east-a"][:4], ["us-east", "us-east-a", "down", "0/1"])
        self.assertIn("soft", rows["eu-west-b"], "drain mode shown")
        endpoint_lines = [l for l in lines if l.startswith("    ")]
        self.assertEqual(len(endpoint_lines), 4, "one indented line per endpoint")
        ep = [l for l in endpoint_lines if "127.0.0.1:18102" in l][0]
        self.assertIn("down", ep)
        # Each endpoint comes after its cluster's row.
        self.assertLess(res.stdout.index("eu-west-a"), res.stdout.index("127.0.0.1:18101"))
        self.assertLess(res.stdout.index("127.0.0.1:18102"), res.stdout.index("eu-west-b "))

    def test_status_json_is_the_raw_answer(self):
        self.stub.answer_json(200, STATUS_EXAMPLE, chunked=True)
        res = self.run_ctl("--json", "status")
        self.assertEqual(json.loads(res.stdout), STATUS_EXAMPLE)
        self.stub.answer_json(200, STATUS_EXAMPLE)
        res = self.run_ctl("status", "--json")  # option after the command
        self.assertEqual(json.loads(res.stdout), STATUS_EXAMPLE)

    def test_chunked_and_close_delimited_answers(self):
        self.stub.answer_json(200, STATUS_EXAMPLE, chunked=True)
        res = self.run_ctl("status")
        self.assertIn("us-east-a", res.stdout, "chunked answer decoded")
        body = json.dumps(STATUS_EXAMPLE).encode()
        self.stub.answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body)
        res = self.run_ctl("status")
        self.assertIn("us-east-a", res.stdout, "answer delimited by the close")

    def test_broken_answers_exit_2(self):
        self.stub.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"generation\"")
        res = self.run_ctl("status", expect=2)
        self.assertIn("meridianctl: ", res.stderr)
        self.stub.answer(b"hello there\r\n\r\n")
        self.run_ctl("status", expect=2)
        self.stub.answer(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!")
        self.run_ctl("status", expect=2)
        self.stub.answer(b"")  # closes without a word
        self.run_ctl("status", expect=2)

    def test_drain_body_and_printout(self):
        self.stub.answer_json(200, {"generation": 5, "previous_generation": 4})
        res = self.run_ctl("drain", "eu-west-a")
        req = self.only_request()
        self.assertEqual((req["method"], req["target"]),
                         ("POST", "/api/v1/clusters/eu-west-a/drain"))
        self.assertEqual(req["headers"].get("content-type"), "application/json")
        self.assertEqual(json.loads(req["body"]),
                         {"mode": "soft", "dry_run": False, "force": False},
                         "no deadline_s when --deadline is not given")
        self.assertEqual(res.stdout.strip(),
                         "drained eu-west-a (soft, no deadline): generation 4 -> 5")
        self.stub.answer_json(200, {"generation": 6, "previous_generation": 5,
                                    "message": "soft drain, no deadline"})
        res = self.run_ctl("drain", "eu-west-a")
        self.assertEqual(res.stdout.strip(),
                         "drained eu-west-a (soft drain, no deadline): generation 5 -> 6",
                         "the edge's message, when it has one")

    def test_drain_options_anywhere(self):
        self.stub.answer_json(200, {"generation": 5, "previous_generation": 4, "message": "ok"})
        self.run_ctl("--force", "drain", "--hard", "eu-west-a", "--deadline", "30")
        self.assertEqual(json.loads(self.only_request()["body"]),
                         {"mode": "hard", "deadline_s": 30, "dry_run": False, "force": True})

    def test_drain_dry_run_printout(self):
        self.stub.answer_json(200, {"dry_run": True, "message": "would drain eu-west-a",
                                    "new_sessions_to": [{"cluster": "eu-west-b", "share": 0.75},
                                                        {"cluster": "us-east-a", "share": 0.25}],
                                    "stranded": []})
        res = self.run_ctl("drain", "eu-west-a", "--dry-run", "--deadline=60")
        self.assertEqual(json.loads(self.only_request()["body"]),
                         {"mode": "soft", "deadline_s": 60, "dry_run": True, "force": False})
        self.assertIn("nothing was changed", res.stdout)
        self.assertRegex(res.stdout, r"eu-west-b\s+75\.0%")
        self.assertRegex(res.stdout, r"us-east-a\s+25\.0%")

    def test_weight_body(self):
        self.stub.answer_json(200, {"generation": 7, "previous_generation": 6,
                                    "message": "weight of eu-west-a: 50 -> 0"})
        res = self.run_ctl("weight", "eu-west-a", "0")
        req = self.only_request()
        self.assertEqual((req["method"], req["target"]),
                         ("PUT", "/api/v1/clusters/eu-west-a/weight"))
        self.assertEqual(json.loads(req["body"]), {"weight": 0, "dry_run": False, "force": False})
        self.assertIn("generation 6 -> 7", res.stdout)
        self.stub.requests.clear()
        self.run_ctl("weight", "eu-west-a", "2.5", "--dry-run")
        self.assertEqual(json.loads(self.only_request()["body"]),
                         {"weight": 2.5, "dry_run": True, "force": False})

    def test_undrain_reload_undo_requests(self):
        self.run_ctl("undrain", "eu-west-a")
        self.run_ctl("reload")
        self.run_ctl("undo")
        self.run_ctl("history")
        got = [(r["method"], r["target"]) for r in self.stub.requests]
        self.assertEqual(got, [("POST", "/api/v1/clusters/eu-west-a/undrain"),
                               ("POST", "/api/v1/reload"), ("POST", "/api/v1/undo"),
                               ("GET", "/api/v1/history")])
        self.assertEqual(json.loads(self.stub.requests[0]["body"]), {}, "undrain sends {}")

    def test_every_change_sends_json_content_type(self):
        # The edge refuses a change without it (415), body or not: it is
        # what a web page cannot send across origins without a preflight.
        for args in (("drain", "eu-west-a"), ("drain", "eu-west-a", "--dry-run"),
                     ("undrain", "eu-west-a"), ("weight", "eu-west-a", "3"), ("reload",),
                     ("undo",)):
            with self.subTest(command=args):
                self.stub.requests.clear()
                self.run_ctl(*args)
                req = self.only_request()
                self.assertNotEqual(req["method"], "GET")
                self.assertEqual(req["headers"].get("content-type"), "application/json",
                                 "%s %s: %r" % (req["method"], req["target"], req["headers"]))

    def test_values_and_arguments_that_start_with_a_dash(self):
        # An option's value is the next word whatever it looks like; after
        # "--" every word is an argument.
        self.run_ctl("explain", "--cookie", "-abc", "--", "-x")
        self.assertEqual(self.only_request()["target"], "/api/v1/explain?ip=-x&cookie=-abc")
        self.stub.requests.clear()
        self.run_ctl("--json", "undrain", "--", "--hard")
        self.assertEqual(self.only_request()["target"], "/api/v1/clusters/--hard/undrain")
        self.stub.requests.clear()
        self.run_ctl("explain", "--cookie=a=b", GB_CLIENT)
        self.assertEqual(self.only_request()["target"],
                         "/api/v1/explain?ip=%s&cookie=a%%3Db" % GB_CLIENT)
        res = ctl("--admin", "--json", "status")
        self.assertEqual(res.returncode, 2, show(res))
        self.assertEqual(res.stderr, "meridianctl: bad admin URL '--json' (from --admin): "
                         "expected http://HOST[:PORT]\n", "--json is --admin's value")

    def test_cluster_name_is_percent_encoded(self):
        self.run_ctl("undrain", "a b/c")
        self.assertEqual(self.only_request()["target"], "/api/v1/clusters/a%20b%2Fc/undrain")

    def test_explain_query_and_printout(self):
        self.stub.answer_json(200, EXPLAIN_EXAMPLE)
        res = self.run_ctl("explain", GB_CLIENT, "--cookie", "v1.k1.a b=c")
        self.assertEqual(self.only_request()["target"],
                         "/api/v1/explain?ip=%s&cookie=v1.k1.a%%20b%%3Dc" % GB_CLIENT)
        for text in ("GB", "EU", "valid", "eu-west", "country", "drained", "geo"):
            self.assertIn(text, res.stdout)
        self.assertRegex(res.stdout, r"eu-west-b.*not eligible.*drained")
        self.assertRegex(res.stdout, r"decision.*geo.*eu-west-a")

    def test_history_printout(self):
        self.stub.answer_json(200, HISTORY_EXAMPLE)
        res = self.run_ctl("history")
        lines = [l for l in res.stdout.splitlines() if l.startswith("2026-")]
        self.assertEqual(len(lines), 3, "one line per change:\n" + res.stdout)
        self.assertRegex(lines[0], r"weight\s+eu-west-a\s+weight=0 \(was 50\)\s+4 -> 5")
        self.assertRegex(lines[1], r"drain\s+eu-west-b\s+drain=soft \(was none\)\s+3 -> 4")
        self.assertRegex(lines[2], r"reload \(undone\)\s+-\s+-\s+2 -> 3")
        self.stub.answer_json(200, {"changes": []})
        self.assertIn("no changes", self.run_ctl("history").stdout)

    def test_undo_printout(self):
        self.stub.answer_json(200, {"generation": 6, "previous_generation": 5,
                                    "message": "weight of eu-west-a back to 50",
                                    "change": {"change": "undo", "cluster": "eu-west-a",
                                               "value": {"weight": 50},
                                               "previous": {"weight": 0}}})
        res = self.run_ctl("undo")
        self.assertEqual(res.stdout.strip(), "weight of eu-west-a back to 50: generation 5 -> 6")

    def test_token_sent_trimmed(self):
        path = os.path.join(self.tmp, "t.token")
        with open(path, "w") as f:
            f.write("  s3cret-Token_1  \n")
        self.run_ctl("--token-file", path, "status")
        self.assertEqual(self.only_request()["headers"].get("authorization"),
                         "Bearer s3cret-Token_1")

    def test_environment_variables(self):
        path = os.path.join(self.tmp, "env.token")
        with open(path, "w") as f:
            f.write("from-env\n")
        res = ctl("status", env={"MERIDIAN_ADMIN": self.stub.url, "MERIDIAN_TOKEN_FILE": path})
        self.assertEqual(res.returncode, 0, show(res))
        self.assertEqual(self.only_request()["headers"].get("authorization"), "Bearer from-env")
        # Flags win over the environment.
        other = os.path.join(self.tmp, "flag.token")
        with open(other, "w") as f:
            f.write("from-flag\n")
        dead = "http://127.0.0.1:%d" % free_port()
        res = ctl("--admin", self.stub.url, "--token-file", other, "status",
                  env={"MERIDIAN_ADMIN": dead, "MERIDIAN_TOKEN_FILE": path})
        self.assertEqual(res.returncode, 0, show(res))
        self.assertEqual(self.stub.requests[-1]["headers"].get("authorization"),
                         "Bearer from-flag")

    def test_refusal_exit_1_with_message(self):
        self.stub.answer_json(409, {"error": "no cluster would take new sessions for GB",
                                    "stranded": ["countries.GB", "default"]})
        res = self.run_ctl("drain", "eu-west-a", expect=1)
        self.assertIn("meridianctl: refused: no cluster would take new sessions for GB",
                      res.stderr)
        self.assertIn("countries.GB, default", res.stderr, "stranded list shown")
        self.assertEqual(res.stdout, "")
        self.stub.answer_json(401, {"error": "missing or wrong token"})
        res = self.run_ctl("status", expect=1)
        self.assertIn("meridianctl: refused: missing or wrong token", res.stderr)
        self.stub.answer_json(400, {"error": "configuration invalid",
                                    "errors": ["regions[0].clusters[0].weight: expected >= 0"]})
        res = self.run_ctl("reload", expect=1)
        self.assertIn("regions[0].clusters[0].weight: expected >= 0", res.stderr,
                      "a reload's errors are shown")
        self.stub.answer(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 11\r\n\r\nbad gateway")
        res = self.run_ctl("status", expect=1)
        self.assertIn("refused: HTTP 502", res.stderr, "a non-JSON refusal")

    @unittest.skipUnless(ipv6_loopback(), "no IPv6 loopback here")
    def test_ipv6_literal(self):
        stub6 = StubAdmin("::1")
        try:
            stub6.answer_json(200, STATUS_EXAMPLE)
            res = ctl("--admin", stub6.url, "status")
            self.assertEqual(res.returncode, 0, show(res))
            self.assertEqual(stub6.requests[0]["headers"].get("host"), "[::1]:%d" % stub6.port)
        finally:
            stub6.close()


# ---------------------------------------------------------- a real meridian

class CtlEdgeTest(OriginTestCase):
    """meridianctl against a running meridian: region eu-west (eu-west-a,
    eu-west-b, weight 50 each) and us-east (us-east-a). GB goes to eu-west
    then us-east, US only to us-east (so draining us-east-a would strand it),
    everything else to eu-west then us-east. A fresh edge per test, so each
    starts at the configuration's state."""

    ENDPOINTS = {"eu-west-a": 1, "eu-west-b": 1, "us-east-a": 1}
    TMP_PREFIX = "mr-ctl-edge-"

    def setUp(self):
        overrides = {
            "health": {"interval_ms": 100, "timeout_ms": 80, "rise": 1, "fall": 1},
            "regions": [
                region("eu-west", {"eu-west-a": (self.eps["eu-west-a"], 50),
                                   "eu-west-b": (self.eps["eu-west-b"], 50)}, 53.35, -6.26),
                region("us-east", {"us-east-a": self.eps["us-east-a"]}, 39.04, -77.49),
            ],
            "routing": {"countries": {"GB": ["eu-west", "us-east"], "US": ["us-east"]},
                        "default": ["eu-west", "us-east"]},
        }
        if os.path.exists(GEOIP_DB):
            overrides["geoip"] = {"database": GEOIP_DB}
        self.path, self.cfg = write_config(tempfile.mkdtemp(dir=self.tmp), overrides)
        self.edge = Meridian(self.path)
        self.edge.start()
        self.addCleanup(self.edge.stop)
        self.token_path = os.path.join(self.edge.dir, "admin.token")
        self.wait_healthy()

    def admin_status(self):
        resp = self.edge.admin("GET", "/api/v1/status")
        self.assertEqual(resp.status, 200, "GET /api/v1/status: %r %r" % (resp, resp.body))
        return resp.json()

    def wait_healthy(self):
        def healthy():
            try:
                st = self.edge.admin("GET", "/api/v1/status").json()
            except (OSError, ValueError):
                return False
            clusters = [c for r in st.get("regions", []) for c in r.get("clusters", [])]
            return len(clusters) == 3 and all(c.get("healthy") for c in clusters)
        wait_for(healthy, timeout=10, message="admin API answering, every cluster healthy")

    def cluster(self, st, name):
        for r in st["regions"]:
            for c in r["clusters"]:
                if c["name"] == name:
                    return c
        self.fail("cluster %s not in status" % name)

    def run_ctl(self, *args, expect=0):
        res = self.edge.ctl(*args)
        self.assertEqual(res.returncode, expect, "meridianctl %r\n%s" % (args, show(res)))
        return res

    def landings(self, n=12, client=GB_CLIENT):
        """Clusters that n fresh, cookie-less requests from client land on."""
        seen = []
        for i in range(n):
            with RawConn(port=self.edge.port, timeout=5) as c:
                resp = c.request("GET", "/ctl%d" % i, headers=[("X-Forwarded-For", client),
                                                               ("Connection", "close")])
                self.assertEqual(resp.status, 200, "request %d from %s" % (i, client))
                seen.append(resp.get("X-Origin-Cluster"))
        return seen

    def generation_change(self, res):
        m = GEN_CHANGE.search(res.stdout)
        self.assertIsNotNone(m, "generation change printed:\n" + res.stdout)
        old, new = int(m.group(1)), int(m.group(2))
        self.assertGreater(new, old, "the generation moves forward")
        return old, new

    # -------------------------------------------------------------- auth

    def test_wrong_token_refused_with_edge_message(self):
        bad = os.path.join(self.edge.dir, "wrong.token")
        with open(bad, "w") as f:
            f.write("not-the-token\n")
        expected = self.edge.admin("GET", "/api/v1/status", token="not-the-token")
        self.assertEqual(expected.status, 401)
        res = ctl("--admin", "http://127.0.0.1:%d" % self.edge.admin_port, "--token-file", bad,
                  "status")
        self.assertEqual(res.returncode, 1, show(res))
        self.assertIn("meridianctl: refused: " + expected.json()["error"], res.stderr)
        res = ctl("--admin", "http://127.0.0.1:%d" % self.edge.admin_port, "status")
        self.assertEqual(res.returncode, 1, "no token at all\n" + show(res))
        self.assertIn("meridianctl: refused: ", res.stderr)

    def test_environment_variables(self):
        env = {"MERIDIAN_ADMIN": "http://127.0.0.1:%d" % self.edge.admin_port,
               "MERIDIAN_TOKEN_FILE": self.token_path}
        res = ctl("status", env=env)
        self.assertEqual(res.returncode, 0, show(res))
        self.assertIn("eu-west-a", res.stdout)

    # ------------------------------------------------------------ status

    def test_status_table_names_every_cluster(self):
        res = self.run_ctl("status")
        st = self.admin_status()
        self.assertIn("generation %d" % st["generation"], res.stdout.splitlines()[0])
        for r in self.cfg["regions"]:
            for c in r["clusters"]:
                row = [l for l in res.stdout.splitlines() if l.split()[1:2] == [c["name"]]]
                self.assertEqual(len(row), 1, "one row for %s:\n%s" % (c["name"], res.stdout))
                self.assertEqual(row[0].split()[0], r["name"], "region column")
                self.assertIn("active", row[0])
                self.assertIn("1/1", row[0], "endpoints up/total")
                for ep in c["endpoints"]:
                    self.assertIn("    " + ep, res.stdout, "endpoint %s indented" % ep)

    def test_status_json_has_the_documented_keys(self):
        res = self.run_ctl("status", "--json")
        st = json.loads(res.stdout)
        for key in ("generation", "config", "started", "regions"):
            self.assertIn(key, st)
        c = self.cluster(st, "eu-west-a")
        for key in ("name", "state", "healthy", "endpoints_up", "endpoints_total", "weight",
                    "configured_weight", "drain", "takes_new_sessions", "keeps_sessions",
                    "traffic", "endpoints"):
            self.assertIn(key, c, "cluster key %s" % key)
        self.assertEqual((c["state"], c["weight"], c["drain"]), ("active", 50, None))
        ep = c["endpoints"][0]
        for key in ("address", "health", "traffic"):
            self.assertIn(key, ep, "endpoint key %s" % key)

    # ------------------------------------------------------------ changes

    def test_drain_moves_new_sessions(self):
        self.assertIn("eu-west-a", self.landings(16), "eu-west-a takes GB clients before")
        res = self.run_ctl("drain", "eu-west-a")
        self.generation_change(res)
        self.assertIn("eu-west-a", res.stdout)
        c = self.cluster(json.loads(self.run_ctl("status", "--json").stdout), "eu-west-a")
        self.assertEqual(c["state"], "draining")
        self.assertEqual(c["drain"]["mode"], "soft")
        self.assertFalse(c["takes_new_sessions"])
        seen = self.landings(12)
        self.assertNotIn("eu-west-a", seen, "no new session on a draining cluster: %r" % seen)
        self.assertEqual(set(seen), {"eu-west-b"}, "the other cluster of the region")

    def test_hard_drain(self):
        res = self.run_ctl("drain", "eu-west-b", "--hard")
        self.generation_change(res)
        c = self.cluster(self.admin_status(), "eu-west-b")
        self.assertEqual((c["state"], c["drain"]["mode"]), ("drained", "hard"))
        self.assertFalse(c["keeps_sessions"])

    def test_dry_run_changes_nothing(self):
        before = self.admin_status()
        res = self.run_ctl("drain", "eu-west-a", "--dry-run")
        self.assertIn("nothing was changed", res.stdout)
        self.assertIn("eu-west-b", res.stdout, "where new sessions would go")
        self.assertIn("%", res.stdout)
        after = self.admin_status()
        self.assertEqual(after["generation"], before["generation"], "no new generation")
        self.assertEqual(self.cluster(after, "eu-west-a")["state"], "active")

    def test_undrain(self):
        self.run_ctl("drain", "eu-west-a")
        res = self.run_ctl("undrain", "eu-west-a")
        self.generation_change(res)
        c = self.cluster(self.admin_status(), "eu-west-a")
        self.assertEqual((c["state"], c["drain"]), ("active", None))
        self.assertIn("eu-west-a", self.landings(16), "takes new sessions again")

    def test_weight_zero(self):
        res = self.run_ctl("weight", "eu-west-a", "0")
        self.generation_change(res)
        c = self.cluster(self.admin_status(), "eu-west-a")
        self.assertEqual((c["weight"], c["configured_weight"], c["state"]), (0, 50, "active"))
        self.assertFalse(c["takes_new_sessions"])
        self.assertTrue(c["keeps_sessions"])
        self.assertNotIn("eu-west-a", self.landings(12))

    def test_unknown_cluster_refused(self):
        expected = self.edge.admin("POST", "/api/v1/clusters/no-such/drain", {"mode": "soft"})
        self.assertEqual(expected.status, 404)
        gen = self.admin_status()["generation"]
        for args in (("drain", "no-such"), ("undrain", "no-such"), ("weight", "no-such", "3")):
            with self.subTest(args=args):
                res = self.run_ctl(*args, expect=1)
                self.assertIn("meridianctl: refused: ", res.stderr)
                if args[0] == "drain":
                    self.assertIn(expected.json()["error"], res.stderr, "the edge's message")
        self.assertEqual(self.admin_status()["generation"], gen, "nothing changed")

    def test_guardrail_refuses_then_force(self):
        # Candidate regions chain through routing.default, so only the last
        # cluster taking new sessions anywhere strands anybody.
        self.run_ctl("drain", "eu-west-a")
        self.run_ctl("weight", "eu-west-b", "0")
        res = self.run_ctl("drain", "us-east-a", expect=1)
        self.assertIn("meridianctl: refused: ", res.stderr)
        stranded = [l for l in res.stderr.splitlines() if l.startswith("meridianctl: stranded: ")]
        self.assertEqual(len(stranded), 1, "the stranded list on its own line:\n" + res.stderr)
        for who in ("countries.GB", "countries.US", "default"):
            self.assertIn(who, stranded[0])
        self.assertEqual(self.cluster(self.admin_status(), "us-east-a")["state"], "active")
        res = self.run_ctl("drain", "us-east-a", "--dry-run")
        self.assertIn("default", res.stdout, "a dry run shows who would be stranded")
        res = self.run_ctl("drain", "us-east-a", "--force")
        self.generation_change(res)
        self.assertEqual(self.cluster(self.admin_status(), "us-east-a")["state"], "draining")

    def test_reload(self):
        res = self.run_ctl("reload")
        self.generation_change(res)
        with open(self.path) as f:
            cfg = json.load(f)
        cfg["regions"][0]["clusters"][0]["weight"] = -1
        with open(self.path, "w") as f:
            json.dump(cfg, f)
        res = self.run_ctl("reload", expect=1)
        self.assertIn("meridianctl: refused: ", res.stderr)
        self.assertIn("weight", res.stderr, "the bad key is named")

    # --------------------------------------------------- explain, history

    def test_explain(self):
        res = self.run_ctl("explain", GB_CLIENT)
        self.assertIn(GB_CLIENT, res.stdout)
        if os.path.exists(GEOIP_DB):
            self.assertIn("GB", res.stdout, "the location")
        self.assertIn("eu-west", res.stdout, "the candidate region")
        self.assertRegex(res.stdout, r"decision.*eu-west-[ab]")
        ex = json.loads(self.run_ctl("explain", GB_CLIENT, "--json").stdout)
        self.assertEqual(ex["ip"], GB_CLIENT)
        self.run_ctl("drain", "eu-west-b")
        res = self.run_ctl("explain", GB_CLIENT, "--cookie", "garbage")
        self.assertIn("malformed", res.stdout, "cookie result")
        self.assertRegex(res.stdout, r"eu-west-b.*not eligible.*drained")
        self.assertRegex(res.stdout, r"decision.*eu-west-a")

    def test_undo_with_nothing_to_undo_refused(self):
        res = self.run_ctl("undo", expect=1)
        self.assertIn("meridianctl: refused: ", res.stderr)

    def test_history_and_undo(self):
        self.run_ctl("drain", "eu-west-a")
        self.run_ctl("weight", "eu-west-b", "20")
        res = self.run_ctl("history")
        lines = res.stdout.splitlines()
        drain = [i for i, l in enumerate(lines) if re.search(r"\bdrain\s+eu-west-a\b", l)]
        weight = [i for i, l in enumerate(lines) if re.search(r"\bweight\s+eu-west-b\b", l)]
        self.assertEqual((len(drain), len(weight)), (1, 1), "both changes listed:\n" + res.stdout)
        self.assertLess(weight[0], drain[0], "newest first")
        self.assertRegex(lines[weight[0]], r"\d+ -> \d+", "generations shown")

        res = self.run_ctl("undo")
        self.generation_change(res)
        self.assertIn("eu-west-b", res.stdout, "says what was reverted")
        st = self.admin_status()
        self.assertEqual(self.cluster(st, "eu-west-b")["weight"], 50, "weight change reverted")
        self.assertEqual(self.cluster(st, "eu-west-a")["state"], "draining", "drain kept")
        self.run_ctl("undo")
        self.assertEqual(self.cluster(self.admin_status(), "eu-west-a")["state"], "active",
                         "second undo reverts the drain")
        self.assertRegex(self.run_ctl("history").stdout, r"\bundo\b", "undo is audited")


if __name__ == "__main__":
    unittest.main(verbosity=2)
