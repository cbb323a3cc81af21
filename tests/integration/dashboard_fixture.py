"""tests/integration/dashboard_fixture.py: a stand-in admin API for developing the dashboard.

A tiny stdlib HTTP server that serves the dashboard at / (control/dashboard/index.html
with its CSS and JS inlined by tools/embed.py, the bytes meridian embeds) and canned,
slowly moving JSON for GET /api/v1/status, GET /api/v1/history, GET /metrics
and the change calls (drain, undrain, weight, with dry_run, force and the 409
guardrail), following docs/admin-api.md. Every call but / and /healthz needs
"Authorization: Bearer TOKEN" (401 otherwise). Change calls are recorded in
.calls (and served, without a token, at GET /__calls).

It is NOT the real meridian: test_dashboard.py runs against a real meridian
and uses this only when DASHBOARD_FIXTURE=1. Standalone, for a look in a
browser:

    python3 tests/integration/dashboard_fixture.py --port 8099 --token secret
"""

import argparse
import datetime
import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
HTML_PATH = os.path.join(ROOT, "control", "dashboard", "index.html")

sys.path.insert(0, os.path.join(ROOT, "tools"))
from embed import inline_page  # noqa: E402

# Countries: new sessions per second and their candidate regions (routing).
COUNTRIES = {
    "GB": (3.0, ["eu-west"]), "DE": (2.2, ["eu-west"]), "FR": (1.6, ["eu-west"]),
    "IE": (0.6, ["eu-west"]), "NL": (0.9, ["eu-west"]), "ES": (0.7, ["eu-west"]),
    "IT": (0.6, ["eu-west"]), "SE": (0.3, ["eu-west"]), "PL": (0.4, ["eu-west"]),
    "US": (3.4, ["us-east"]), "CA": (0.8, ["us-east", "eu-west"]),
    "BR": (0.5, ["us-east", "eu-west"]), "IN": (1.1, ["ap-south", "eu-west"]),
    "JP": (0.7, ["ap-south", "us-east"]), "SG": (0.4, ["ap-south", "eu-west"]),
    "AU": (0.3, ["ap-south", "us-east"]), "MX": (0.2, ["us-east"]),
    "unknown": (0.5, ["eu-west", "us-east"]),
}
# routing.default; a client's candidate regions are its country's list, then these.
DEFAULT = ["eu-west", "us-east"]
# The guardrail: routes whose clients must keep a cluster taking new sessions.
GUARDED = {"countries.US": ["us-east"] + DEFAULT, "default": DEFAULT}


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FixtureState:
    """The simulated edge: clusters, overrides, counters, history."""

    def __init__(self):
        now = time.time()
        self.lock = threading.Lock()
        self.started = now - 3 * 3600 - 17 * 60
        self.generation = 7
        self.last_tick = now
        self.rng = random.Random(7)
        self.regions = [
            {"name": "eu-west", "lat": 53.35, "lon": -6.26, "clusters": [
                self._cluster("eu-west-a", 50, ["10.1.0.11:8080", "10.1.0.12:8080"]),
                self._cluster("eu-west-b", 50, ["10.1.1.11:8080", "10.1.1.12:8080"]),
            ]},
            {"name": "us-east", "lat": 39.04, "lon": -77.49, "clusters": [
                self._cluster("us-east-a", 100, ["10.2.0.11:8080", "10.2.0.12:8080", "10.2.0.13:8080"]),
            ]},
            {"name": "ap-south", "lat": 1.29, "lon": 103.85, "clusters": [
                self._cluster("ap-south-a", 100, ["10.3.0.11:8080", "10.3.0.12:8080"]),
            ]},
        ]
        # Canned health: one endpoint of eu-west-b down, ap-south-a all down.
        c = self.cluster("eu-west-b")
        c["endpoints"][1].update(health="down", since=iso(now - 140), last_check="connect: connection refused")
        c = self.cluster("ap-south-a")
        for ep in c["endpoints"]:
            ep.update(health="down", since=iso(now - 610), last_check="HTTP 503")
        self.transitions = [
            {"time": iso(now - 140), "cluster": "eu-west-b", "address": "10.1.1.12:8080",
             "health": "down", "reason": "2 failed checks: connect: connection refused"},
            {"time": iso(now - 600), "cluster": "ap-south-a", "address": "10.3.0.12:8080",
             "health": "down", "reason": "2 failed checks: HTTP 503"},
            {"time": iso(now - 610), "cluster": "ap-south-a", "address": "10.3.0.11:8080",
             "health": "down", "reason": "2 failed checks: HTTP 503"},
            {"time": iso(now - 2400), "cluster": "us-east-a", "address": "10.2.0.13:8080",
             "health": "up", "reason": "2 passed checks: HTTP 200"},
            {"time": iso(now - 2520), "cluster": "us-east-a", "address": "10.2.0.13:8080",
             "health": "down", "reason": "passive: 3 upstream connect failures"},
        ]
        self.changes = [
            {"time": iso(now - 1800), "change": "weight", "cluster": "eu-west-a",
             "value": {"weight": 50}, "previous": {"weight": 70},
             "generation_before": 6, "generation_after": 7},
            {"time": iso(now - 5400), "change": "undrain", "cluster": "us-east-a",
             "value": {"drain": None}, "previous": {"drain": {"mode": "soft", "deadline_s": None}},
             "generation_before": 5, "generation_after": 6},
        ]
        self.new_sessions = {}   # (country, cluster) -> float
        # Seed counters so the page has something at once.
        for _ in range(30):
            self._advance(10.0)

    @staticmethod
    def _cluster(name, weight, addrs):
        now = time.time()
        return {
            "name": name, "configured_weight": weight, "override_weight": None, "drain": None,
            "requests": 0.0, "new_sessions": 0.0, "sticky_hits": 0.0,
            "endpoints": [{"address": a, "health": "up", "since": iso(now - 11000),
                           "last_check": "HTTP 200", "requests": 0.0} for a in addrs],
        }

    def cluster(self, name):
        for r in self.regions:
            for c in r["clusters"]:
                if c["name"] == name:
                    return c
        return None

    # -- derived state, as the contract defines it
    def weight(self, c):
        return c["override_weight"] if c["override_weight"] is not None else c["configured_weight"]

    def up(self, c):
        return sum(1 for e in c["endpoints"] if e["health"] == "up")

    def healthy(self, c):
        return self.up(c) >= 0.5 * len(c["endpoints"])

    def past_deadline(self, c):
        d = c["drain"]
        return bool(d and d.get("deadline_t") and time.time() >= d["deadline_t"])

    def state(self, c):
        if not self.healthy(c):
            return "down"
        d = c["drain"]
        if d and (d["mode"] == "hard" or self.past_deadline(c)):
            return "drained"
        if d:
            return "draining"
        return "active"

    def takes_new(self, c, overrides=None):
        o = (overrides or {}).get(c["name"], {})
        drain = o.get("drain", c["drain"])
        weight = o.get("weight", self.weight(c))
        return self.healthy(c) and weight > 0 and drain is None

    def keeps(self, c):
        d = c["drain"]
        return self.healthy(c) and not (d and (d["mode"] == "hard" or self.past_deadline(c)))

    def region_clusters(self, rname):
        for r in self.regions:
            if r["name"] == rname:
                return r["clusters"]
        return []

    def destinations(self, candidates, overrides=None):
        """{cluster: share} of new sessions for clients with these candidate regions."""
        for rname in candidates:
            eligible = [c for c in self.region_clusters(rname) if self.takes_new(c, overrides)]
            if eligible:
                total = sum((overrides or {}).get(c["name"], {}).get("weight", self.weight(c))
                            for c in eligible)
                return {c["name"]: (overrides or {}).get(c["name"], {}).get("weight", self.weight(c)) / total
                        for c in eligible}
        return {}

    def stranded(self, overrides):
        return sorted(k for k, regions in GUARDED.items() if not self.destinations(regions, overrides))

    # -- traffic simulation
    def _advance(self, dt):
        for country, (rate, candidates) in COUNTRIES.items():
            wobble = 1.0 + 0.35 * self.rng.uniform(-1, 1)
            for cname, share in self.destinations(candidates + DEFAULT).items():
                n = rate * share * dt * wobble
                key = (country, cname)
                self.new_sessions[key] = self.new_sessions.get(key, 0.0) + n
                c = self.cluster(cname)
                c["new_sessions"] += n
                c["requests"] += 4 * n
        for r in self.regions:
            for c in r["clusters"]:
                if self.keeps(c):
                    sticky = (6.0 if c["drain"] is None else 2.0) * dt * (1 + 0.3 * self.rng.uniform(-1, 1))
                    c["requests"] += sticky
                    c["sticky_hits"] += sticky
                ups = [e for e in c["endpoints"] if e["health"] == "up"]
                for e in ups:
                    e["requests"] = c["requests"] / len(ups)

    def tick(self):
        now = time.time()
        dt = now - self.last_tick
        if dt > 0:
            self._advance(dt)
            self.last_tick = now

    # -- views
    def status(self):
        regions = []
        for r in self.regions:
            out = []
            for c in r["clusters"]:
                d = c["drain"]
                drain = None
                if d:
                    drain = {"mode": d["mode"], "deadline": iso(d["deadline_t"]) if d.get("deadline_t") else None,
                             "deadline_s": d.get("deadline_s")}
                out.append({
                    "name": c["name"], "state": self.state(c), "healthy": self.healthy(c),
                    "endpoints_up": self.up(c), "endpoints_total": len(c["endpoints"]),
                    "weight": self.weight(c), "configured_weight": c["configured_weight"],
                    "drain": drain, "takes_new_sessions": self.takes_new(c), "keeps_sessions": self.keeps(c),
                    "traffic": {"requests": int(c["requests"]), "new_sessions": int(c["new_sessions"]),
                                "sticky_hits": int(c["sticky_hits"]),
                                "active_connections": int(3 + self.rng.random() * 9) if self.keeps(c) else 0},
                    "endpoints": [{"address": e["address"], "health": e["health"], "since": e["since"],
                                   "last_check": e["last_check"],
                                   "traffic": {"requests": int(e["requests"]),
                                               "active_connections": 1 if e["health"] == "up" else 0}}
                                  for e in c["endpoints"]],
                })
            regions.append({"name": r["name"], "lat": r["lat"], "lon": r["lon"], "clusters": out})
        return {"generation": self.generation, "config": "/etc/meridian/edge.json",
                "started": iso(self.started), "regions": regions,
                "health_transitions": list(self.transitions)}

    def metrics(self):
        lines = ["# HELP meridian_new_sessions_total New sessions decided, by client country and cluster.",
                 "# TYPE meridian_new_sessions_total counter"]
        for (country, cname), v in sorted(self.new_sessions.items()):
            lines.append('meridian_new_sessions_total{country="%s",cluster="%s"} %d' % (country, cname, int(v)))
        lines.append("# TYPE meridian_generation gauge")
        lines.append("meridian_generation %d" % self.generation)
        return "\n".join(lines) + "\n"

    # -- changes
    def change(self, kind, name, body):
        """Returns (status, json) for a drain/undrain/weight call."""
        c = self.cluster(name)
        if c is None:
            return 404, {"error": "unknown cluster %s" % name}
        if not isinstance(body, dict):
            return 400, {"error": "body is not a JSON object"}
        dry = bool(body.get("dry_run"))
        force = bool(body.get("force"))
        if kind == "drain":
            mode = body.get("mode", "soft")
            if mode not in ("soft", "hard"):
                return 400, {"error": "mode: must be \"soft\" or \"hard\""}
            dl = body.get("deadline_s")
            if dl is not None and (not isinstance(dl, int) or dl < 1):
                return 400, {"error": "deadline_s: must be an integer >= 1"}
            override = {name: {"drain": {"mode": mode}}}
            value = {"mode": mode, "deadline_s": dl}
            previous = {"drain": self._drain_view(c)}
        elif kind == "undrain":
            override = {name: {"drain": None}}
            value, previous = {"drain": None}, {"drain": self._drain_view(c)}
        else:
            w = body.get("weight")
            if not isinstance(w, int) or isinstance(w, bool) or w < 0:
                return 400, {"error": "weight: must be an integer >= 0"}
            override = {name: {"weight": w}}
            value, previous = {"weight": w}, {"weight": self.weight(c)}
        stranded = self.stranded(override)
        if dry:
            # Where the affected cluster's new sessions would go: its region
            # first, then the others.
            region = next(r["name"] for r in self.regions if c in r["clusters"])
            dest = self.destinations([region] + [r["name"] for r in self.regions if r["name"] != region],
                                     override)
            return 200, {"dry_run": True,
                         "message": "%s %s: would move its new sessions to %s" % (
                             kind, name, ", ".join(sorted(dest)) or "nowhere"),
                         "new_sessions_to": [{"cluster": k, "share": round(v, 3)}
                                             for k, v in sorted(dest.items(), key=lambda kv: -kv[1])],
                         "stranded": stranded}
        if stranded and not force:
            return 409, {"error": "%s %s would leave %s with no cluster taking new sessions"
                         % (kind, name, ", ".join(stranded)), "stranded": stranded}
        before = self.generation
        if kind == "drain":
            c["drain"] = {"mode": value["mode"], "deadline_s": value["deadline_s"],
                          "deadline_t": time.time() + value["deadline_s"] if value["deadline_s"] else None}
        elif kind == "undrain":
            c["drain"] = None
        else:
            c["override_weight"] = None if value["weight"] == c["configured_weight"] else value["weight"]
        self.generation += 1
        if force:
            value["force"] = True
        self.changes.insert(0, {"time": iso(time.time()), "change": kind, "cluster": name,
                                "value": value, "previous": previous,
                                "generation_before": before, "generation_after": self.generation})
        return 200, {"generation": self.generation, "previous_generation": before,
                     "message": "%s %s applied" % (kind, name),
                     "change": {"change": kind, "cluster": name, "value": value}}

    @staticmethod
    def _drain_view(c):
        d = c["drain"]
        return None if d is None else {"mode": d["mode"], "deadline_s": d.get("deadline_s")}


class Fixture:
    """The fixture server on a loopback port, in a background thread.

        with Fixture(token="t") as fx:
            ...fx.url, fx.calls, fx.state...
    """

    def __init__(self, token, port=0, host="127.0.0.1", html_path=HTML_PATH):
        self.token = token
        self.html_path = html_path
        self.state = FixtureState()
        self.calls = []     # change calls received: {"method", "path", "body", "authorized"}
        self.requests = []  # every request: (method, path, authorized)
        self.unreachable = False  # True: every request is dropped unanswered
        fixture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body, ctype="application/json"):
                if not isinstance(body, bytes):
                    body = (json.dumps(body) if ctype == "application/json" else body).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _authorized(self):
                return self.headers.get("Authorization") == "Bearer " + fixture.token

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                if not raw:
                    return {}
                try:
                    return json.loads(raw)
                except ValueError:
                    return None

            def _handle(self, method):
                if fixture.unreachable:
                    self.close_connection = True
                    return None
                path = self.path.split("?", 1)[0]
                authorized = self._authorized()
                fixture.requests.append((method, path, authorized))
                body = self._body() if method in ("POST", "PUT") else None
                if method == "GET" and path == "/":
                    return self._send(200, inline_page(fixture.html_path),
                                      "text/html; charset=utf-8")
                if method == "GET" and path == "/healthz":
                    return self._send(200, "ok\n", "text/plain")
                if method == "GET" and path == "/__calls":
                    return self._send(200, fixture.calls)
                parts = path.strip("/").split("/")
                is_change = (len(parts) == 5 and parts[:3] == ["api", "v1", "clusters"]
                             and parts[4] in ("drain", "undrain", "weight"))
                if is_change:
                    fixture.calls.append({"method": method, "path": path, "body": body,
                                          "authorized": authorized})
                if not authorized:
                    return self._send(401, {"error": "missing or wrong bearer token"})
                st = fixture.state
                with st.lock:
                    st.tick()
                    if method == "GET" and path == "/api/v1/status":
                        return self._send(200, st.status())
                    if method == "GET" and path == "/api/v1/history":
                        return self._send(200, {"changes": list(st.changes)})
                    if method == "GET" and path == "/metrics":
                        return self._send(200, st.metrics(), "text/plain; version=0.0.4")
                    if is_change:
                        want = "PUT" if parts[4] == "weight" else "POST"
                        if method != want:
                            self.send_response(405)
                            self.send_header("Allow", want)
                            self.send_header("Content-Length", "0")
                            self.end_headers()
                            return None
                        if body is None:
                            return self._send(400, {"error": "body is not valid JSON"})
                        status, out = st.change(parts[4], parts[3], body)
                        return self._send(status, out)
                return self._send(404, {"error": "no such path: %s" % path})

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self.thread = None

    @property
    def url(self):
        return "http://%s:%d/" % (self.host, self.port)

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=8099)
    ap.add_argument("--token", default="secret")
    args = ap.parse_args()
    fx = Fixture(args.token, port=args.port)
    print("dashboard fixture on %s (token %r); Ctrl-C stops" % (fx.url, args.token), flush=True)
    try:
        fx.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fx.server.server_close()


if __name__ == "__main__":
    main()
