#!/usr/bin/python3
"""GET /docs in a real browser: Debian's headless Chromium opens the page that the real shardurl
binary serves (against the suite's real shards) and is driven like a person would use it.

  - the page renders every operation of /openapi.json (method, path, summary, parameters, request
    body, responses), as the server's own /openapi.json describes them;
  - "Try it out" round trips: a JSON create (201, the link in the DOM, readable through the API),
    the tutorial's query create (200), a lookup (200), a redirect, a DELETE without a key (401) and
    with the key typed once in another operation's form (204; the API then answers 410); the curl
    command the page shows, run as it is, gets the same answer;
  - the page loads nothing but from this server (every request the browser made is listed), logs
    no error, and its Content-Security-Policy holds: an injected inline script does not run, a
    fetch to another origin is refused;
  - the HTTP side: Content-Type, the policy's hashes match the served script and style, HEAD, 405.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe): no port, no
websocket library. Host names resolve to nothing in the browser, so the test cannot reach the
internet even by mistake. Chromium missing is a failure, not a skip: scripts/deps installs it.

Usage (through ctest): /usr/bin/python3 test/e2e/docs_page_test.py BINARY
Environment: SHARDURL_CHROMIUM (default: chromium on PATH); SHARDURL_DOCS_SCREENSHOT=FILE.png
saves what the page looks like after the round trips.
"""
import base64
import fcntl
import hashlib
import http.client
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

import harness

BINARY = None
KEY = "docs-page-key-0123456789abcdef"


def http_call(port, method, path, body=None, headers=None):
    """(status, headers, body bytes) over a plain socket, outside the browser."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


# Headless, as root (no sandbox), nothing in the background, every host name unresolvable (only
# 127.0.0.1 is reachable), DevTools on fds 3 and 4.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps",
    "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1200,1400", "--remote-debugging-pipe",
]


class Chromium:
    """Headless Chromium, one tab, driven over the DevTools protocol: JSON messages separated by
    NUL bytes, commands on the browser's fd 3 and answers and events on its fd 4."""

    def __init__(self, executable):
        self.profile = tempfile.mkdtemp(prefix="shardurl-chromium-")
        self.stderr = tempfile.TemporaryFile()
        commands_r, self.commands = os.pipe()
        self.answers, answers_w = os.pipe()

        def onto_fds_3_and_4():
            # Out of the way first: either pipe end may itself be fd 3 or 4.
            r = fcntl.fcntl(commands_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(answers_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        try:
            self.proc = subprocess.Popen(
                [executable, *CHROMIUM_FLAGS, "--user-data-dir=" + self.profile, "about:blank"],
                stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr,
                preexec_fn=onto_fds_3_and_4, close_fds=False)
        except OSError:
            for fd in (commands_r, self.commands, self.answers, answers_w):
                os.close(fd)
            self.stderr.close()
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        os.close(commands_r)
        os.close(answers_w)
        self.buffer = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def output(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")[-4000:]

    def _message(self, deadline):
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.answers], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time:\n" + self.output())
            data = os.read(self.answers, 1 << 20)
            if not data:
                raise RuntimeError("Chromium closed the pipe:\n" + self.output())
            self.buffer += data
        message, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method, params=None, page=True, timeout=15):
        """Sends a command (to the tab when `page`, else to the browser) and returns its result;
        events that arrive meanwhile are kept in self.events."""
        self.next_id += 1
        command = {"id": self.next_id, "method": method, "params": params or {}}
        if page:
            command["sessionId"] = self.session
        os.write(self.commands, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._message(deadline)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def open_tab(self):
        target = self.send("Target.createTarget", {"url": "about:blank"}, page=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 page=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(domain + ".enable")

    def evaluate(self, expression):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression, timeout=10):
        deadline = time.monotonic() + timeout
        failure = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except RuntimeError as e:  # e.g. the page navigating away from about:blank just then
                failure, value = e, None
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(f"never true in the page: {expression} (last error: {failure})")

    def events_named(self, method):
        return [e["params"] for e in self.events if e.get("method") == method]

    def close(self):
        try:
            self.send("Browser.close", page=False, timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.commands)
        os.close(self.answers)
        self.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# The page's operations as a person sees them, read from the DOM.
READ_OPERATIONS = """
[...document.querySelectorAll("[data-operation]")].map((op) => ({
  method: op.dataset.method, path: op.dataset.path,
  summary: op.querySelector("summary .summary").textContent,
  shown: op.querySelector("summary").getBoundingClientRect().height > 0,
  parameters: [...op.querySelectorAll("[data-parameter]")].map((row) => row.dataset.parameter),
  requestBody: op.querySelector("[data-request-body]")?.textContent ?? null,
  responses: [...op.querySelectorAll("[data-response]")].map((row) => ({
    code: row.dataset.response, text: row.textContent})),
  text: op.textContent}))
"""


def operation(method, path):
    """A JavaScript expression for one operation's element."""
    selector = f'[data-operation="{method} {path}"]'
    return f"document.querySelector({json.dumps(selector)})"


def resolve(doc, value):
    while isinstance(value, dict) and "$ref" in value:
        node = doc
        for key in value["$ref"].lstrip("#/").split("/"):
            node = node[key]
        value = node
    return value


class DocsPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        executable = os.environ.get("SHARDURL_CHROMIUM") or shutil.which("chromium")
        if not executable:
            raise RuntimeError("chromium is not installed (Debian's package `chromium`; scripts/deps "
                               "installs it): this test fails rather than skip")
        cls.started = time.monotonic()
        cls.server = harness.Server(BINARY, extra={"api_keys": [KEY]})
        cls.base = f"http://127.0.0.1:{cls.server.port}"
        cls.browser = None
        try:
            cls.server.wait_ready()
            cls.browser = Chromium(executable)
            cls.browser.open_tab()
            cls.browser.send("Page.navigate", {"url": cls.base + "/docs"})
            cls.browser.wait_for("['ready', 'error'].includes(document.body && document.body.dataset.state)")
        except Exception as e:
            logged = [entry["entry"]["text"] for entry in cls.browser.events_named("Log.entryAdded")
                      ] if cls.browser else []
            cls.tearDownClass()
            raise RuntimeError(f"no page to test (see the cause above); the browser logged: {logged}") from e

    @classmethod
    def tearDownClass(cls):
        if cls.browser:
            cls.browser.close()
        output = cls.server.output()
        code = cls.server.stop()
        assert code == 0, f"shardurl exited {code}:\n{output}"  # a sanitizer's report, say
        print(f"\ndocs_page_test: {time.monotonic() - cls.started:.1f} s with Chromium", file=sys.stderr)

    def spec(self):
        status, _, body = http_call(self.server.port, "GET", "/openapi.json")
        self.assertEqual(status, 200)
        return json.loads(body)

    # -- the page as a person sees it -----------------------------------------------------

    def test_01_the_page_renders_every_operation_of_openapi_json(self):
        b = self.browser
        self.assertEqual(b.evaluate("document.body.dataset.state"), "ready",
                         b.evaluate("document.getElementById('status').textContent"))
        doc = self.spec()
        shown = {(op["method"], op["path"]): op for op in b.evaluate(READ_OPERATIONS)}
        expected = {}
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method != "parameters":
                    expected[(method.upper(), path)] = (op, item.get("parameters", []))
        self.assertEqual(set(shown), set(expected))
        self.assertGreaterEqual(len(shown), 14)  # the document's own size today: not an empty page
        for key, (op, path_params) in expected.items():
            with self.subTest(operation=" ".join(key)):
                seen = shown[key]
                self.assertTrue(seen["shown"])
                self.assertEqual(seen["summary"], op["summary"])
                text = " ".join(seen["text"].split())
                if "description" in op:
                    self.assertIn(" ".join(op["description"].split()), text)
                params = [resolve(doc, p)["name"] for p in path_params + op.get("parameters", [])]
                self.assertEqual(sorted(seen["parameters"]), sorted(set(params)))
                self.assertEqual([r["code"] for r in seen["responses"]], sorted(op["responses"]))
                for code, response in op["responses"].items():
                    row = next(r for r in seen["responses"] if r["code"] == code)
                    self.assertIn(" ".join(resolve(doc, response)["description"].split()),
                                  " ".join(row["text"].split()))
                if "requestBody" in op:
                    # Its media types, and its schema spelled out: each property with its own
                    # description (CreateLink's url and alias).
                    body_text = " ".join(seen["requestBody"].split())
                    for media_type, media in resolve(doc, op["requestBody"])["content"].items():
                        self.assertIn(media_type + ":", body_text)
                        for prop, schema in resolve(doc, media["schema"]).get("properties", {}).items():
                            self.assertRegex(body_text, f"{prop}( required)?: {schema['type']}")
                            self.assertIn(" ".join(schema["description"].split()), body_text)
                else:
                    self.assertIsNone(seen["requestBody"])
        status = b.evaluate("document.getElementById('status').textContent")
        self.assertEqual(status, f"{len(expected)} operations on {len(doc['paths'])} paths.")

    # -- Try it out ------------------------------------------------------------------------

    def fill(self, method, path, values):
        """Opens the operation and types into its form fields, by field name ("body" the body)."""
        op = operation(method, path)
        self.browser.evaluate(f"""(() => {{
          const op = {op};
          if (!op.open) op.querySelector("summary").click();
          for (const [name, value] of Object.entries({json.dumps(values)})) {{
            const field = op.querySelector(`form.try [name="${{name}}"]`);
            field.focus();
            field.value = value;
            field.dispatchEvent(new Event("input", {{bubbles: true}}));
          }}
          return true;
        }})()""")

    def send(self, method, path, values):
        """Fills the form, presses Send and returns what the page shows: status, headers, body."""
        self.fill(method, path, values)
        op = operation(method, path)
        b = self.browser
        b.evaluate(f"""(() => {{
          const result = {op}.querySelector(".result");
          delete result.dataset.status;
          {op}.querySelector("form.try button[type=submit]").click();
          return true;
        }})()""")
        b.wait_for(f"{op}.querySelector('.result').dataset.status !== undefined && "
                   f"!{op}.querySelector('form.try button').disabled")
        return b.evaluate(f"""(() => {{
          const result = {op}.querySelector(".result");
          const text = (selector) => {{ const e = result.querySelector(selector); return e ? e.textContent : null; }};
          return {{status: result.dataset.status, line: text(".answer-status"),
                   headers: text(".answer-headers"), body: text(".answer-body"),
                   curl: {op}.querySelector("pre.curl").textContent,
                   visible: result.getBoundingClientRect().height > 0}};
        }})()""")

    def test_02_try_it_out_round_trips(self):
        port = self.server.port
        url = f"https://example.org/docs-page/{uuid.uuid4().hex}"

        # A JSON create: the example body replaced by the user's own.
        shown = self.send("POST", "/urls", {"body": json.dumps({"url": url})})
        self.assertEqual(shown["status"], "201", shown)
        self.assertTrue(shown["visible"])
        self.assertTrue(shown["line"].startswith("201 Created"), shown)
        self.assertIn("content-type: application/json", shown["headers"])
        link = json.loads(shown["body"])
        self.assertEqual(link["url"], url)
        status, _, body = http_call(port, "GET", "/urls/" + link["url_id"])
        self.assertEqual((status, json.loads(body)), (200, link))

        # The tutorial's form: full_url in the query, the body emptied.
        query_url = url + "/query"
        shown = self.send("POST", "/urls", {"full_url": query_url, "body": ""})
        self.assertEqual(shown["status"], "200", shown)
        made = json.loads(shown["body"])
        self.assertEqual(made["url"], query_url)
        self.assertIn("?full_url=", shown["curl"])
        self.assertNotIn("Content-Type", shown["curl"])

        # A lookup; the curl command the page shows gets the same answer.
        shown = self.send("GET", "/urls/{url_id}", {"url_id": link["url_id"]})
        self.assertEqual(shown["status"], "200", shown)
        self.assertEqual(json.loads(shown["body"]), link)
        curl = subprocess.run(["bash", "-c", shown["curl"] + " --silent --max-time 10"],
                              capture_output=True, text=True, timeout=20)
        self.assertTrue(curl.stdout.startswith("HTTP/1.1 200 OK"), curl.stdout + curl.stderr)
        self.assertEqual(json.loads(curl.stdout.split("\n\n", 1)[1]), link)  # text mode: CRLF is LF

        # The redirect: the browser hides a redirect's status from scripts; the page says so.
        shown = self.send("GET", "/{url_id}", {"url_id": made["url_id"]})
        self.assertEqual(shown["status"], "redirect", shown)

        # DELETE without a key: 401 shown; the key typed into POST /urls's form fills DELETE's too.
        shown = self.send("DELETE", "/urls/{url_id}", {"url_id": link["url_id"]})
        self.assertEqual(shown["status"], "401", shown)
        self.assertIn("detail", json.loads(shown["body"]))
        self.fill("POST", "/urls", {"X-Api-Key": KEY})
        delete_op = operation("DELETE", "/urls/{url_id}")
        self.assertEqual(self.browser.evaluate(f"{delete_op}.querySelector('[name=\"X-Api-Key\"]').value"), KEY)
        shown = self.send("DELETE", "/urls/{url_id}", {"url_id": link["url_id"]})
        self.assertEqual(shown["status"], "204", shown)
        self.assertEqual(shown["body"], "(empty)")
        self.assertIn("-X DELETE", shown["curl"])
        self.assertIn("X-Api-Key: " + KEY, shown["curl"])
        self.assertEqual(http_call(port, "GET", "/urls/" + link["url_id"])[0], 410)

        # An id with '/' is percent-encoded into the path, as the API documents.
        shown = self.send("GET", "/urls/{url_id}", {"url_id": "no/such"})
        self.assertEqual(shown["status"], "404", shown)
        self.assertEqual(json.loads(shown["body"]), {"detail": "Url with id: no/such was not found"})
        self.assertIn("/urls/no%2Fsuch", shown["curl"])

        path = os.environ.get("SHARDURL_DOCS_SCREENSHOT")
        if path:
            size = self.browser.send("Page.getLayoutMetrics")["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            shot = self.browser.send("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                                "captureBeyondViewport": True})
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))

    # -- what the page may do --------------------------------------------------------------

    def test_03_the_policy_holds_in_the_browser(self):
        b = self.browser
        # An inline script the page did not ship does not run; a fetch to another origin is refused.
        self.assertTrue(b.evaluate("""(() => {
          const s = document.createElement("script");
          s.textContent = "window.injected = true";
          document.body.append(s);
          return window.injected === undefined;
        })()"""))
        self.assertEqual(b.evaluate("""fetch("http://docs-test.invalid/x").then(() => "sent", (e) => "refused")"""),
                         "refused")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            b.evaluate("1")  # collects pending events
            violations = [e["entry"]["text"] for e in b.events_named("Log.entryAdded")
                          if "Content Security Policy" in e["entry"]["text"]]
            if len(violations) >= 2:
                break
            time.sleep(0.05)
        self.assertTrue(any("script-src" in v for v in violations), violations)
        self.assertTrue(any("connect-src" in v for v in violations), violations)

    def test_04_the_browser_loaded_nothing_but_from_this_server_and_logged_no_error(self):
        b = self.browser
        b.evaluate("1")
        here = self.base + "/"
        sent = b.events_named("Network.requestWillBeSent")
        urls = [e["request"]["url"] for e in sent]
        self.assertIn(self.base + "/docs", urls)
        self.assertIn(self.base + "/openapi.json", urls)
        # fetch(redirect: "manual") reports the redirect it does not follow as a request to the
        # Location; no answer from there may ever arrive. test_03's refused fetch is no request.
        not_followed = [e["request"]["url"] for e in sent
                        if e.get("redirectResponse", {}).get("url", "").startswith(here)]
        foreign = [u for u in urls if not u.startswith((here, "data:")) and u not in not_followed]
        self.assertEqual(foreign, [])
        answered = [e["response"]["url"] for e in b.events_named("Network.responseReceived")]
        self.assertEqual([u for u in answered if not u.startswith(here)], [])
        errors = [e["entry"]["text"] for e in b.events_named("Log.entryAdded")
                  if e["entry"]["level"] == "error" and "Content Security Policy" not in e["entry"]["text"]
                  # the answers the round trips asked for (401, 404) are logged as failed loads
                  and "Failed to load resource" not in e["entry"]["text"]]
        self.assertEqual(errors, [])
        self.assertEqual(b.events_named("Runtime.exceptionThrown"), [])
        console_errors = [e for e in b.events_named("Runtime.consoleAPICalled") if e["type"] == "error"]
        self.assertEqual(console_errors, [])

    # -- the HTTP side ---------------------------------------------------------------------

    def test_05_headers_hashes_head_and_405(self):
        port = self.server.port
        status, headers, body = http_call(port, "GET", "/docs")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        policy = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";"))
        self.assertEqual(policy["default-src"], "'none'")
        self.assertEqual(policy["connect-src"], "'self'")
        self.assertEqual(policy["frame-ancestors"], "'none'")
        self.assertNotIn("unsafe", headers["content-security-policy"])
        page = body.decode()
        for tag in ("script", "style"):
            with self.subTest(element=tag):
                inline = re.findall(f"<{tag}>(.*?)</{tag}>", page, re.S)
                self.assertEqual(len(inline), 1)
                digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
                self.assertEqual(policy[f"{tag}-src"], f"'sha256-{digest}'")
        self.assertNotRegex(page, r"(?i)\b(src|href)\s*=\s*\"(https?:)?//")  # nothing from elsewhere

        status, head_headers, head_body = http_call(port, "HEAD", "/docs")
        self.assertEqual((status, head_body), (200, b""))
        self.assertEqual(head_headers["content-length"], str(len(body)))
        self.assertEqual(head_headers["content-security-policy"], headers["content-security-policy"])

        status, headers, body = http_call(port, "POST", "/docs")
        self.assertEqual(status, 405)
        self.assertEqual(headers["allow"], "GET, HEAD")
        self.assertEqual(json.loads(body), {"detail": "Method Not Allowed"})


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
