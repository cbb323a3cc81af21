"""tests/integration/test_dashboard.py: the operator dashboard (GET / of the admin listener) in a real browser.

Starts a real meridian (harness.Origin + write_config + Meridian) with two
regions and three clusters, sends it a trickle of traffic, and drives
headless Chromium through chromedriver (Debian's chromium, chromium-driver
and python3-selenium) at the admin listener:

- the page asks for the token before any /api call; after it is entered,
  every cluster of the configuration appears with its state, generation and
  "last updated" show, and the browser console has no errors;
- Drain (soft) through the dry-run dialog really drains (GET /api/v1/status
  says "draining") and the page shows it; Undrain undoes it;
- a weight set through the dialog is in force on the server and on the page;
- with both eu-west clusters drained (through the API), a drain of
  us-east-a leaves the default route with no cluster: the guardrail refuses
  it (409), the page shows the error with the stranded list, and "Force"
  applies it;
- a 1440x900 screenshot lands in the test's temp dir (and in
  build/dashboard.png with KEEP_SCREENSHOT=1);
- once meridian has stopped, the page says the admin API is unreachable;
- CrossSiteTest: with no token on loopback, a page of another origin (a
  text/plain drain, a body-less reload, the dashboard in a frame) and a
  page on a DNS name rebound to 127.0.0.1 (Chromium's
  --host-resolver-rules) neither read nor change anything.

DASHBOARD_FIXTURE=1 runs the same checks against tests/integration/
dashboard_fixture.py (a canned admin API) instead of meridian: for
developing the page only.

Debian's python3-selenium is only visible to /usr/bin/python3: run with
another python3, this script re-executes itself with /usr/bin/python3. It
prints "skipped: ..." and exits 0 when chromium, chromedriver or selenium is
missing.
"""

import os
import sys

SYSTEM_PYTHON = "/usr/bin/python3"


def _have_selenium():
    try:
        import selenium  # noqa: F401
        return True
    except ImportError:
        return False


if not _have_selenium():
    if (os.path.exists(SYSTEM_PYTHON) and not os.environ.get("MR_DASHBOARD_REEXEC")
            and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON)):
        os.environ["MR_DASHBOARD_REEXEC"] = "1"
        sys.stdout.flush()
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, os.path.abspath(__file__)] + sys.argv[1:])
    print("skipped: python3-selenium is not installed "
          "(apt-get install -y chromium chromium-driver python3-selenium)")
    sys.exit(0)

import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import unittest  # noqa: E402


def _find(names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = _find(["chromium", "chromium-browser", "google-chrome"])
CHROMEDRIVER = _find(["chromedriver"]) or ("/usr/bin/chromedriver"
                                           if os.path.exists("/usr/bin/chromedriver") else None)
if not CHROMIUM or not CHROMEDRIVER:
    print("skipped: %s not installed (apt-get install -y chromium chromium-driver python3-selenium)"
          % " and ".join(n for n, p in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)) if not p))
    sys.exit(0)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import Meridian, Origin, addr, region, request, write_config  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
USE_FIXTURE = os.environ.get("DASHBOARD_FIXTURE") == "1"
WAIT_S = 10          # every browser wait is bounded by this
WIDTH, HEIGHT = 1440, 900


class DashboardTest(unittest.TestCase):
    """One backend (meridian or the fixture) and one browser for the class;
    the tests run in name order and build on each other's state."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mr-dashboard-")
        cls.failed = False
        cls.origin = cls.meridian = cls.fixture = cls.driver = None
        cls.stop_traffic = threading.Event()
        cls.traffic = None
        try:
            if USE_FIXTURE:
                cls.start_fixture()
            else:
                cls.start_meridian()
            cls.driver = cls.start_browser()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_fixture(cls):
        from dashboard_fixture import Fixture
        cls.token = "fixture-token-%d" % os.getpid()
        cls.fixture = Fixture(cls.token).start()
        cls.admin_host, cls.admin_port = cls.fixture.host, cls.fixture.port
        cls.clusters = {"eu-west-a": "active", "eu-west-b": "active", "us-east-a": "active",
                        "ap-south-a": "down"}

    @classmethod
    def start_meridian(cls):
        eu_a = [addr(), addr()]
        eu_b = [addr(), addr()]
        us_a = [addr()]
        # eu-west-b's second endpoint has no origin: it stays down (1/2 up,
        # still healthy at min_healthy 0.5), so the page shows a down endpoint.
        cls.origin = Origin({"eu-west-a": eu_a, "eu-west-b": eu_b[:1], "us-east-a": us_a},
                            log=False).start()
        path, _ = write_config(cls.tmp, {
            "regions": [region("eu-west", {"eu-west-a": (eu_a, 50), "eu-west-b": (eu_b, 50)},
                               lat=53.35, lon=-6.26),
                        region("us-east", {"us-east-a": (us_a, 100)}, lat=39.04, lon=-77.49)],
            "routing": {"countries": {"US": ["us-east"]}, "default": ["eu-west", "us-east"]},
        })
        cls.meridian = Meridian(path).start()
        cls.admin_host, cls.admin_port = cls.meridian.admin_host, cls.meridian.admin_port
        cls.token = cls.meridian.token
        cls.clusters = {"eu-west-a": "active", "eu-west-b": "active", "us-east-a": "active"}

        # A trickle of new sessions (no cookie: every request is decided anew),
        # so the rates, shares and the country matrix have data.
        def send():
            while not cls.stop_traffic.wait(0.05):
                try:
                    request(cls.meridian.port, "GET", "/", timeout=2)
                except OSError:
                    pass
        cls.traffic = threading.Thread(target=send, daemon=True)
        cls.traffic.start()

    @classmethod
    def start_browser(cls, extra_args=()):
        opts = Options()
        opts.binary_location = CHROMIUM
        for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    "--window-size=%d,%d" % (WIDTH, HEIGHT),
                    "--user-data-dir=" + os.path.join(cls.tmp, "chromium-profile")) + tuple(extra_args):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=CHROMEDRIVER,
                          log_path=os.path.join(cls.tmp, "chromedriver.log"))
        driver = webdriver.Chrome(service=service, options=opts)
        # The viewport of the shot is exactly WIDTH x HEIGHT (a headless
        # window's size includes its frame).
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
        driver.set_page_load_timeout(WAIT_S)
        driver.set_script_timeout(WAIT_S)
        return driver

    @classmethod
    def tearDownClass(cls):
        cls.stop_traffic.set()
        if cls.traffic:
            cls.traffic.join(timeout=5)
        if cls.driver:
            try:
                cls.driver.quit()
            except WebDriverException:
                pass
        if cls.fixture:
            cls.fixture.stop()
        if cls.meridian:
            cls.meridian.__exit__(None, None, None)  # stop; raises on a sanitizer report
        if cls.origin:
            cls.origin.stop()
            cls.origin.remove_files()
        if cls.failed:
            print("kept for inspection: %s" % cls.tmp)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def run(self, result=None):
        # Keep the temp dir and a screenshot when a test fails.
        before = len(result.failures) + len(result.errors) if result else 0
        out = super().run(result)
        if result and len(result.failures) + len(result.errors) > before:
            type(self).failed = True
            if self.driver:
                try:
                    self.driver.save_screenshot(os.path.join(self.tmp, "failure-%s.png" % self._testMethodName))
                except WebDriverException:
                    pass
        return out

    # ------------------------------------------------------------ helpers

    def api(self, method, path, body=None):
        headers = {"Authorization": "Bearer " + self.token}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        resp = request(self.admin_port, method, path, headers=headers, body=data, host=self.admin_host)
        return resp.status, (resp.json() if resp.body else None)

    def server_cluster(self, name):
        status, st = self.api("GET", "/api/v1/status")
        self.assertEqual(status, 200, st)
        for r in st["regions"]:
            for c in r["clusters"]:
                if c["name"] == name:
                    return c
        self.fail("cluster %s not in /api/v1/status" % name)

    def wait_server(self, name, pred, what):
        deadline = time.monotonic() + WAIT_S
        while True:
            c = self.server_cluster(name)
            if pred(c):
                return c
            if time.monotonic() > deadline:
                self.fail("server: %s %s not reached within %d s; last: %s" % (name, what, WAIT_S, c))
            time.sleep(0.1)

    def wait(self, pred, message):
        def safe(d):
            try:
                return pred(d)
            except (StaleElementReferenceException, LookupError):
                return False
        return WebDriverWait(self.driver, WAIT_S, poll_frequency=0.05).until(safe, message)

    def visible(self, css):
        def find(d):
            els = [e for e in d.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]
            return els[0] if els else False
        return self.wait(find, "no visible %s within %d s" % (css, WAIT_S))

    def row(self, name):
        return self.driver.find_element(By.CSS_SELECTOR, 'tr.cluster[data-cluster="%s"]' % name)

    def page_state(self, name):
        return self.row(name).find_element(By.CSS_SELECTOR, '[data-role="state"]').get_attribute("data-state")

    def wait_page_state(self, name, state):
        self.wait(lambda d: self.page_state(name) == state,
                  "page: %s not shown %s within %d s" % (name, state, WAIT_S))

    def dismiss_toasts(self):
        self.driver.execute_script("document.querySelectorAll('#toasts .toast').forEach(t => t.remove())")

    def click_action(self, name, action):
        self.dismiss_toasts()
        btn = self.row(name).find_element(By.CSS_SELECTOR, '[data-action="%s"]' % action)
        self.wait(lambda d: btn.is_enabled(), "%s of %s stays disabled" % (action, name))
        btn.click()

    def confirm_dialog(self):
        """Waits for the dry-run dialog, checks it shows the server's answer, confirms."""
        self.visible("#modal-backdrop")
        msg = self.visible('#modal [data-role="dry-run-message"]')
        self.assertTrue(msg.text.strip(), "the dry-run dialog shows no message")
        self.driver.find_element(By.ID, "modal-confirm").click()

    def wait_modal_closed(self):
        self.wait(lambda d: not d.find_element(By.ID, "modal-backdrop").is_displayed(),
                  "the dialog did not close")

    def console_errors(self, allow=()):
        errors = []
        for entry in self.driver.get_log("browser"):
            if entry.get("level") != "SEVERE":
                continue
            if any(a in entry.get("message", "") for a in allow):
                continue
            errors.append(entry)
        return errors

    def toast_texts(self):
        return [t.text for t in self.driver.find_elements(By.CSS_SELECTOR, "#toasts .toast")]

    # ------------------------------------------------------------ tests

    def test_1_token_then_every_cluster(self):
        d = self.driver
        d.get("http://%s:%d/" % (self.admin_host, self.admin_port))
        # No token yet: the page asks for it (and calls no /api).
        self.visible("#prompt")
        token_input = d.find_element(By.ID, "token")
        self.assertTrue(token_input.is_displayed())
        if self.fixture:
            self.assertFalse([r for r in self.fixture.requests if r[1].startswith("/api/")],
                             "the page called the API before it had a token")

        # A wrong token: the 401 banner.
        token_input.send_keys("wrong-token")
        d.find_element(By.ID, "token-save").click()
        banner = self.visible("#banner")
        self.wait(lambda _: "401" in banner.text, "no 401 banner for a wrong token")
        d.get_log("browser")  # drop the expected "401" resource errors

        token_input.clear()
        token_input.send_keys(self.token)
        d.find_element(By.ID, "token-save").click()
        self.visible("#content")
        self.wait(lambda _: not d.find_element(By.ID, "banner").is_displayed(), "the 401 banner stays")

        # Every cluster of the configuration, with its state (health settles first).
        for name, state in self.clusters.items():
            self.wait(lambda _: self.page_state(name) == state,
                      "page: cluster %s not shown as %s within %d s" % (name, state, WAIT_S))
        shown = {e.get_attribute("data-cluster") for e in d.find_elements(By.CSS_SELECTOR, "tr.cluster")}
        self.assertEqual(shown, set(self.clusters))

        # Generation and "last updated".
        _, st = self.api("GET", "/api/v1/status")
        self.wait(lambda _: d.find_element(By.ID, "generation").text == str(st["generation"]),
                  "generation %s not shown" % st["generation"])
        self.assertRegex(d.find_element(By.ID, "updated").text, r"^\d\d:\d\d:\d\d$")
        # Endpoint rows: every endpoint of the cluster with its health.
        eu_b = d.find_elements(By.CSS_SELECTOR, '[data-endpoints-of="eu-west-b"] .ep')
        self.assertEqual(len(eu_b), len(self.server_cluster("eu-west-b")["endpoints"]))
        self.wait(lambda _: d.find_elements(By.CSS_SELECTOR, '[data-endpoints-of="eu-west-b"] .ep.down'),
                  "eu-west-b's down endpoint not shown as down")

        # The token is kept for the tab, and the page's own text is escaped.
        self.assertEqual(d.execute_script("return sessionStorage.getItem('meridian.admin.token')"), self.token)
        if self.fixture:
            with self.fixture.state.lock:
                self.fixture.state.transitions[0]["reason"] = '<img src=x id="xss" onerror="window.xss=1">'
            self.wait(lambda _: '<img src=x id="xss"' in d.find_element(By.ID, "transitions-body").text,
                      "injected text not shown verbatim")
            self.assertEqual(d.find_elements(By.ID, "xss"), [])
            self.assertIsNone(d.execute_script("return window.xss"))
            with self.fixture.state.lock:
                self.fixture.state.transitions[0]["reason"] = "2 failed checks: connect: connection refused"

        self.assertEqual(self.console_errors(), [], "browser console errors")

    def test_2_drain_and_undrain(self):
        self.click_action("eu-west-a", "drain")
        self.confirm_dialog()
        self.wait_server("eu-west-a", lambda c: c["state"] == "draining", "draining")
        self.wait_modal_closed()
        self.wait_page_state("eu-west-a", "draining")
        drain_cell = self.row("eu-west-a").find_element(By.CSS_SELECTOR, '[data-role="drain"]')
        self.assertIn("soft", drain_cell.text)
        self.wait(lambda _: any("Drain eu-west-a" in t for t in self.toast_texts()), "no toast for the drain")
        if self.fixture:
            drains = [c for c in self.fixture.calls if c["path"] == "/api/v1/clusters/eu-west-a/drain"]
            self.assertEqual([bool(c["body"].get("dry_run")) for c in drains], [True, False])
            self.assertTrue(all(c["authorized"] for c in drains))

        self.click_action("eu-west-a", "undrain")
        self.wait_server("eu-west-a", lambda c: c["state"] == "active" and c["drain"] is None, "undrained")
        self.wait_page_state("eu-west-a", "active")
        self.assertEqual(self.console_errors(), [], "browser console errors")

    def test_3_set_weight(self):
        box = self.row("eu-west-b").find_element(By.CSS_SELECTOR, '[data-role="weight-input"]')
        box.clear()
        box.send_keys("30")
        self.click_action("eu-west-b", "set-weight")
        self.confirm_dialog()
        self.wait_server("eu-west-b", lambda c: c["weight"] == 30, "weight 30")
        self.wait_modal_closed()
        self.wait(lambda _: self.row("eu-west-b").find_element(By.CSS_SELECTOR, '[data-role="weight"]').text == "30",
                  "page: eu-west-b weight 30 not shown")
        # The change shows in "Recent changes".
        self.wait(lambda d: "eu-west-b" in d.find_element(By.ID, "changes-body").text,
                  "the weight change is not in Recent changes")
        self.assertEqual(self.console_errors(), [], "browser console errors")

    def test_4_guardrail_409_then_force(self):
        d = self.driver
        for name in ("eu-west-a", "eu-west-b"):
            status, body = self.api("POST", "/api/v1/clusters/%s/drain" % name, {"mode": "soft"})
            self.assertEqual(status, 200, body)
        self.wait_page_state("eu-west-b", "draining")
        self.click_action("us-east-a", "drain")
        # The dry run may already be refused (409) or answer with the stranded
        # list; either way the real call is refused and the dialog offers Force.
        first = self.wait(lambda _: next((e for e in d.find_elements(By.CSS_SELECTOR, "#modal-confirm, #modal-force")
                                          if e.is_displayed()), False), "no dialog after Drain")
        if first.get_attribute("id") == "modal-confirm":
            first.click()
        force = self.visible("#modal-force")
        err = d.find_element(By.CSS_SELECTOR, '#modal [data-role="conflict-error"]').text
        self.assertTrue(err.strip(), "409 dialog shows no error")
        stranded = d.find_element(By.CSS_SELECTOR, '#modal [data-role="stranded"]').text
        self.assertIn("default", stranded)
        self.assertEqual(self.server_cluster("us-east-a")["drain"], None, "a refused change changed something")
        force.click()
        self.wait_server("us-east-a", lambda c: c["state"] == "draining", "draining (forced)")
        self.wait_modal_closed()
        self.wait_page_state("us-east-a", "draining")
        self.wait(lambda _: any("forced" in t for t in self.toast_texts()), "no toast for the forced drain")

        self.click_action("us-east-a", "undrain")
        self.wait_server("us-east-a", lambda c: c["drain"] is None, "undrained")
        self.wait_page_state("us-east-a", "active")
        for name in ("eu-west-a", "eu-west-b"):
            status, body = self.api("POST", "/api/v1/clusters/%s/undrain" % name, {})
            self.assertEqual(status, 200, body)
        self.wait_page_state("eu-west-b", "active")
        # The only errors allowed are the browser's own lines about the 409 answers.
        self.assertEqual(self.console_errors(allow=("409",)), [], "browser console errors")

    def test_5_screenshot(self):
        d = self.driver
        # A soft drain in force makes the shot show every kind of row.
        self.click_action("eu-west-a", "drain")
        self.confirm_dialog()
        self.wait_page_state("eu-west-a", "draining")
        # Wait for rates: a sparkline with a line and a share in percent.
        # A few rate points, so the shot shows lines rather than dots.
        self.wait(lambda _: len(d.find_element(By.CSS_SELECTOR, 'tr.cluster[data-cluster="eu-west-b"] svg.spark polyline')
                                .get_attribute("points").split()) >= 4, "no sparkline drawn")
        self.wait(lambda _: "%" in self.row("eu-west-b").find_element(By.CSS_SELECTOR, '[data-role="share"]').text,
                  "no share shown")
        self.wait(lambda _: d.find_elements(By.CSS_SELECTOR, "#geo-body table.matrix tr[data-country]"),
                  "no country x cluster matrix")
        self.dismiss_toasts()
        inner = d.execute_script("return [window.innerWidth, window.innerHeight]")
        self.assertEqual(inner, [WIDTH, HEIGHT])
        path = os.path.join(self.tmp, "dashboard.png")
        self.assertTrue(d.save_screenshot(path))
        self.assertGreater(os.path.getsize(path), 10000)
        if os.environ.get("KEEP_SCREENSHOT") == "1":
            os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
            shutil.copy(path, os.path.join(ROOT, "build", "dashboard.png"))
            print("screenshot: %s" % os.path.join(ROOT, "build", "dashboard.png"))
        self.assertEqual(self.console_errors(), [], "browser console errors")

    def test_6_unreachable_banner(self):
        if self.fixture:
            self.fixture.unreachable = True
        else:
            self.meridian.stop()
        banner = self.visible("#banner")
        self.wait(lambda _: "unreachable" in banner.text.lower(), "no 'unreachable' banner")
        self.assertIn("unreachable", self.driver.find_element(By.ID, "conn").text)
        if self.fixture:  # and it recovers by itself
            self.fixture.unreachable = False
            self.wait(lambda d: not d.find_element(By.ID, "banner").is_displayed(), "the banner stays")


@unittest.skipIf(USE_FIXTURE, "needs a real meridian")
class EjectedEndpointTest(unittest.TestCase):
    """An endpoint passive health ejected is marked on its chip, with why."""

    wait = DashboardTest.wait
    visible = DashboardTest.visible

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mr-dashboard-ej-")
        cls.dead, live = addr(), addr()
        cls.origin = Origin({"main": [live]}, log=False).start()
        cls.meridian = cls.driver = None
        try:
            # Active checks once at start (fall 5: the dead one stays up);
            # passive health ejects it after 3 connect failures, for a minute.
            path, _ = write_config(cls.tmp, {
                "workers": 1,
                "regions": [region("local", {"main": [cls.dead, live]})],
                "routing": {"default": ["local"], "endpoint_policy": "round_robin"},
                "health": {"interval_ms": 60000, "timeout_ms": 1000, "fall": 5,
                           "passive": {"consecutive_failures": 3, "base_ms": 60000}},
            })
            cls.meridian = Meridian(path).start()
            for i in range(8):
                request(cls.meridian.port, "GET", "/eject%d" % i, timeout=5)
            cls.driver = DashboardTest.start_browser.__func__(cls)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.driver:
            try:
                cls.driver.quit()
            except WebDriverException:
                pass
        if cls.meridian:
            cls.meridian.__exit__(None, None, None)
        cls.origin.stop()
        cls.origin.remove_files()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_ejected_endpoint_marked(self):
        d = self.driver
        d.get("http://%s:%d/" % (self.meridian.admin_host, self.meridian.admin_port))
        self.visible("#prompt")
        d.find_element(By.ID, "token").send_keys(self.meridian.token)
        d.find_element(By.ID, "token-save").click()
        chip = self.visible('[data-endpoints-of="main"] .ep.ejected[data-endpoint="%s"]' % self.dead)
        self.assertIn("ejected: connect_failure until", chip.text)
        self.assertEqual(d.find_elements(By.CSS_SELECTOR, '[data-endpoints-of="main"] .ep.ejected'),
                         [chip], "only the failing endpoint is marked")


class CrossSiteTest(unittest.TestCase):
    """Other web pages in the operator's browser against a meridian on
    loopback with no token (the case where the browser itself is the only
    guard): a page of another origin that POSTs a hard drain as text/plain
    and a body-less reload (no preflight needed for either), and a page
    whose DNS name was rebound to 127.0.0.1 calling the API same-origin.
    None of them reads or changes anything."""

    ATTACK = """<!doctype html><title>attack</title>
<iframe id="dash" src="http://127.0.0.1:%(port)d/"></iframe><script>
const admin = 'http://127.0.0.1:%(port)d';
Promise.allSettled([
  fetch(admin + '/api/v1/clusters/eu-west-a/drain', {method: 'POST', mode: 'no-cors',
        headers: {'Content-Type': 'text/plain'}, body: '{"mode": "hard", "force": true}'}),
  fetch(admin + '/api/v1/reload', {method: 'POST', mode: 'no-cors'}),
  new Promise(done => window.addEventListener('load', done)),
]).then(() => { document.title = 'sent'; });
</script>"""

    @classmethod
    def setUpClass(cls):
        import http.server
        cls.tmp = tempfile.mkdtemp(prefix="mr-crosssite-")
        cls.origin = cls.meridian = cls.driver = cls.attacker = None
        try:
            eps = [addr()]
            cls.origin = Origin({"eu-west-a": eps}, log=False).start()
            path, cfg = write_config(cls.tmp, {"regions": [region("eu-west", {"eu-west-a": eps})],
                                               "routing": {"default": ["eu-west"]}})
            del cfg["admin"]["token_file"]
            with open(path, "w") as f:
                json.dump(cfg, f)
            cls.meridian = Meridian(path).start()
            page = (cls.ATTACK % {"port": cls.meridian.admin_port}).encode()

            class Page(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)

                def log_message(self, *a):
                    pass
            cls.attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
            threading.Thread(target=cls.attacker.serve_forever, daemon=True).start()
            # evil.test resolves to 127.0.0.1: DNS rebinding, as the browser sees it.
            cls.driver = DashboardTest.start_browser.__func__(
                cls, ["--host-resolver-rules=MAP evil.test 127.0.0.1"])
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.driver:
            try:
                cls.driver.quit()
            except WebDriverException:
                pass
        if cls.attacker:
            cls.attacker.shutdown()
            cls.attacker.server_close()
        if cls.meridian:
            cls.meridian.__exit__(None, None, None)
        if cls.origin:
            cls.origin.stop()
            cls.origin.remove_files()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def state(self):
        m = self.meridian
        st = m.admin("GET", "/api/v1/status").json()
        hist = m.admin("GET", "/api/v1/history").json()["changes"]
        return st["generation"], st["regions"][0]["clusters"][0]["state"], len(hist)

    def test_other_origin_cannot_change(self):
        before = self.state()
        self.assertEqual(before[1], "active")
        self.driver.get("http://127.0.0.1:%d/" % self.attacker.server_address[1])
        WebDriverWait(self.driver, WAIT_S).until(lambda d: d.title == "sent",
                                                 "the page's requests did not complete")
        self.assertEqual(self.state(), before, "the page changed nothing")
        # The dashboard does not render in its frame (no clickjacking).
        self.driver.switch_to.frame("dash")
        try:
            self.assertEqual(self.driver.find_elements(By.ID, "token"), [],
                             "the dashboard rendered inside another site's frame")
        finally:
            self.driver.switch_to.default_content()

    def test_rebound_name_cannot_read_or_change(self):
        before = self.state()
        d = self.driver
        d.get("http://evil.test:%d/" % self.meridian.admin_port)
        out = d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            (async () => {
              const out = {};
              const r = await fetch('/api/v1/status');
              out.status = r.status;
              out.text = (await r.text()).slice(0, 300);
              const w = await fetch('/api/v1/clusters/eu-west-a/drain', {method: 'POST',
                  headers: {'Content-Type': 'application/json'},
                  body: JSON.stringify({mode: 'hard', force: true})});
              out.drain = w.status;
              done(out);
            })().catch(e => done({error: String(e)}));""")
        self.assertEqual(out.get("status"), 403, out)
        self.assertNotIn("eu-west-a", out.get("text", ""), "nothing read")
        self.assertEqual(out.get("drain"), 403, out)
        self.assertEqual(self.state(), before, "the page changed nothing")


if __name__ == "__main__":
    unittest.main(verbosity=2)
