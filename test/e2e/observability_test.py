#!/usr/bin/python3
"""/metrics and the logs, end to end: the real binary, real shards, real HTTP clients.

- /metrics: the counters move by exactly the requests sent (per route and status, summed over two
  workers), histograms are cumulative with +Inf == count, every configured shard has its series,
  the cache counts hits, and `promtool check metrics` (Debian's prometheus package) accepts it all;
- a shard cut off and restored twice (through a TCP proxy): its state gauge and error counters
  follow, and each change of state is logged once, however many requests fail meanwhile;
- logs: JSON lines parse with ts, level and msg; access lines carry their fields, escaped; access
  off writes none; the text format has time stamps; a bad "log" setting is refused at start.

Usage (scripts/test runs it through ctest): /usr/bin/python3 test/e2e/observability_test.py BINARY
"""
import base64
import collections
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

from uhashring import HashRing

import harness

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fault"))
import tcp_proxy  # noqa: E402

BINARY = None
RING = HashRing(nodes=harness.TUTORIAL_NAMES)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def expected_id(url, length=7):
    return base64.urlsafe_b64encode(hashlib.sha256(url.encode()).digest()).decode()[:length]


def urls_on(shard, count, tag):
    """Fresh URLs whose new id the ring places on `shard`."""
    out = []
    while len(out) < count:
        url = f"https://example.com/{tag}/{uuid.uuid4()}"
        if RING.get_node(expected_id(url)) == shard:
            out.append(url)
    return out


def unescape(value):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_metrics(text):
    """{(name, ((label, value), ...)): float} of every sample line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        key = (name, tuple(sorted((k, unescape(v)) for k, v in LABEL.findall(labels or ""))))
        assert key not in samples, f"duplicate series {key}"
        samples[key] = float(value)
    return samples


def series(samples, name, **labels):
    """The samples of `name` whose labels include `labels`: {labels dict as tuple: value}."""
    want = set(labels.items())
    return {k[1]: v for k, v in samples.items() if k[0] == name and want <= set(k[1])}


def value(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    return samples.get(key, 0.0)


def scrape(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, (resp.status, body)
        return resp.getheader("Content-Type"), body
    finally:
        conn.close()


def raw_request(server, data):
    """Sends raw bytes, returns the status of the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split()[1])


def promtool_check(text):
    """promtool's verdict on an exposition: (ok, what it said). promtool is a test dependency
    (scripts/deps installs Debian's prometheus): its absence fails the test."""
    promtool = shutil.which("promtool")
    if promtool is None:
        raise AssertionError("promtool is missing: install Debian's prometheus package "
                             "(scripts/deps lists it among the test packages)")
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    return out.returncode == 0, out.stdout + out.stderr


def log_lines(server):
    return [line for line in server.output().splitlines() if line]


def json_lines(server):
    return [json.loads(line) for line in log_lines(server)]


def wait_for(predicate, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_state(server, shard, state, timeout=15):
    wait_for(lambda: value(parse_metrics(scrape(server)[1]), "shardurl_shard_state", shard=shard,
                           state=state) == 1, timeout, f"shard {shard} {state} in /metrics")


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Two workers: connections alternate between them, and the scrape must add both up.
        cls.server = harness.Server(BINARY, extra={"workers": 2, "redirect_status": 302})
        cls.server.wait_ready()

    @classmethod
    def tearDownClass(cls):
        output = cls.server.output()
        if cls.server.stop() != 0:
            print(output, file=sys.stderr)

    def request(self, method, path):
        return self.server.request(method, path)[0]

    def warm_cache(self):
        """Redirects a link of each shard until the caches answer it (a cache serves a shard's
        links once that shard's change feed is current): then repeated redirects below hit."""
        for shard in harness.TUTORIAL_NAMES:
            url = urls_on(shard, 1, "warm")[0]
            status, body = self.server.request("POST", "/urls?full_url=" + url)
            self.assertEqual(status, 200)
            hits = value(parse_metrics(scrape(self.server)[1]), "shardurl_cache_hits_total")
            deadline = time.monotonic() + 10
            while value(parse_metrics(scrape(self.server)[1]), "shardurl_cache_hits_total") < hits + 2:
                self.assertLess(time.monotonic(), deadline, f"no cache hit for shard {shard} in 10 s")
                self.assertEqual(self.request("GET", "/" + body["url_id"]), 302)

    def test_counters_move_by_exactly_the_requests_sent(self):
        self.warm_cache()
        content_type, before_text = scrape(self.server)
        self.assertTrue(content_type.startswith("text/plain; version=0.0.4"), content_type)
        before = parse_metrics(before_text)

        sent = collections.Counter()

        def send(method, path, route, status):
            self.assertEqual(self.request(method, path), status, f"{method} {path}")
            sent[(route, str(status))] += 1

        ids = []
        for i in range(5):
            status, body = self.server.request(
                "POST", f"/urls?full_url=https://example.com/metrics/{uuid.uuid4()}/{i}")
            self.assertEqual(status, 200, body)
            sent[("/urls", "200")] += 1
            ids.append(body["url_id"])
        for url_id in ids:
            send("GET", "/urls/" + url_id, "/urls/{url_id}", 200)
        for _ in range(10):
            send("GET", "/" + ids[0], "/{url_id}", 302)
        send("GET", "/urls/nosuchid" + uuid.uuid4().hex[:8], "/urls/{url_id}", 404)
        send("GET", "/nosuchid" + uuid.uuid4().hex[:8], "/{url_id}", 404)
        send("DELETE", "/urls/" + ids[1], "/urls/{url_id}", 401)
        send("PUT", "/healthz", "/healthz", 405)
        send("GET", "/healthz", "/healthz", 200)
        send("HEAD", "/healthz", "/healthz", 200)
        send("GET", "/readyz", "/readyz", 200)
        send("GET", "/openapi.json", "/openapi.json", 200)
        send("HEAD", "/docs", "/docs", 200)  # (the harness reads bodies as JSON)
        send("POST", "/metrics", "/metrics", 405)
        send("GET", "/a/b/c", "unmatched", 404)
        send("GET", "/%zz", "unmatched", 400)
        send("POST", "/urls", "/urls", 422)
        self.assertEqual(raw_request(self.server, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400)
        sent[("refused", "400")] += 1
        self.assertEqual(raw_request(self.server, b"GET / HTTP/1.1\r\nX: " + b"y" * 9000 + b"\r\n\r\n"), 431)
        sent[("refused", "431")] += 1
        self.assertEqual(raw_request(self.server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), 400)
        sent[("refused", "400")] += 1
        sent[("/metrics", "200")] += 1  # the first scrape, counted once written

        _, after_text = scrape(self.server)
        after = parse_metrics(after_text)

        # Requests by route and status: exactly what was sent, nothing else.
        moved = collections.Counter()
        for labels, count in series(after, "shardurl_http_requests_total").items():
            d = dict(labels)
            delta = count - value(before, "shardurl_http_requests_total", **d)
            if delta:
                moved[(d["route"], d["status"])] = delta
        self.assertEqual(dict(moved), {k: float(v) for k, v in sent.items()})

        # Histograms: cumulative buckets, +Inf == count == the route's requests; sums grow.
        per_route = collections.Counter()
        for (route, _), n in sent.items():
            per_route[route] += n
        routes = {dict(k)["route"] for k in series(after, "shardurl_http_request_duration_seconds_count")}
        self.assertEqual(routes, {"/urls", "/urls/{url_id}", "/healthz", "/readyz", "/openapi.json", "/docs",
                                  "/metrics", "/{url_id}", "unmatched", "refused"})
        for route in routes:
            buckets = series(after, "shardurl_http_request_duration_seconds_bucket", route=route)
            ordered = sorted(((float(dict(k)["le"]), v) for k, v in buckets.items()))
            self.assertEqual(ordered[-1][0], float("inf"))
            counts = [v for _, v in ordered]
            self.assertEqual(counts, sorted(counts), f"{route}: buckets not cumulative")
            count = value(after, "shardurl_http_request_duration_seconds_count", route=route)
            self.assertEqual(ordered[-1][1], count, route)
            answered = sum(v for k, v in series(after, "shardurl_http_requests_total", route=route).items())
            self.assertEqual(count, answered, route)
            grew = count - value(before, "shardurl_http_request_duration_seconds_count", route=route)
            self.assertEqual(grew, per_route[route], route)
            if grew:
                self.assertGreater(value(after, "shardurl_http_request_duration_seconds_sum", route=route),
                                   value(before, "shardurl_http_request_duration_seconds_sum", route=route))
                self.assertGreater(value(after, "shardurl_http_response_bytes_total", route=route),
                                   value(before, "shardurl_http_response_bytes_total", route=route))

        # The cache: every read and redirect asked it once; repeated redirects hit.
        hits = value(after, "shardurl_cache_hits_total") - value(before, "shardurl_cache_hits_total")
        misses = value(after, "shardurl_cache_misses_total") - value(before, "shardurl_cache_misses_total")
        lookups = sum(n for (route, status), n in sent.items()
                      if route in ("/urls/{url_id}", "/{url_id}") and status in ("200", "302", "404"))
        self.assertEqual(hits + misses, lookups)
        self.assertGreaterEqual(hits, 8)  # 10 redirects over 2 workers: at most 2 misses
        self.assertGreater(value(after, "shardurl_cache_entries"), 0)

        # Every configured shard has each per-shard series; they are up, and did the work.
        for name in harness.TUTORIAL_NAMES:
            states = {dict(k)["state"]: v for k, v in series(after, "shardurl_shard_state", shard=name).items()}
            self.assertEqual(states, {"unknown": 0, "up": 1, "down": 0}, name)
            sessions = {dict(k)["state"] for k in series(after, "shardurl_shard_sessions", shard=name)}
            self.assertEqual(sessions, {"busy", "idle"}, name)
            for family in ("shardurl_shard_queue_depth", "shardurl_shard_statements_in_flight",
                           "shardurl_shard_statements_total", "shardurl_shard_batch_size_count"):
                self.assertEqual(len(series(after, family, shard=name)), 1, (family, name))
            kinds = {dict(k)["kind"] for k in series(after, "shardurl_shard_errors_total", shard=name)}
            self.assertEqual(kinds, {"unavailable", "overloaded", "timeout", "statement", "stale", "moving"})
            batches = series(after, "shardurl_shard_batch_size_bucket", shard=name)
            ordered = sorted(((float(dict(k)["le"]), v) for k, v in batches.items()))
            self.assertEqual([v for _, v in ordered], sorted(v for _, v in ordered))
            self.assertEqual(ordered[-1][1], value(after, "shardurl_shard_batch_size_count", shard=name))
        statements = sum(series(after, "shardurl_shard_statements_total").values()) - \
            sum(series(before, "shardurl_shard_statements_total").values())
        self.assertGreaterEqual(statements, 5 + 5)  # the creates, and the reads of the new links
        self.assertEqual(sum(series(after, "shardurl_shard_errors_total").values()), 0)

        self.assertGreaterEqual(value(after, "shardurl_http_open_connections"), 1)
        info = series(after, "shardurl_build_info")
        self.assertEqual(list(info.values()), [1.0])
        self.assertRegex(dict(next(iter(info)))["version"], r"^\d+\.\d+\.\d+$")
        self.assertGreater(value(after, "process_start_time_seconds"), time.time() - 3600)
        self.assertGreater(value(after, "process_open_fds"), 0)

        ok, said = promtool_check(after_text)
        self.assertTrue(ok, said)
        self.assertEqual(said.strip(), "")

    def test_head_answers_the_headers_of_get(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request("HEAD", "/metrics")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.read(), b"")
            self.assertGreater(int(resp.getheader("Content-Length")), 1000)
        finally:
            conn.close()

    def test_promtool_refuses_a_broken_exposition(self):
        # The check the test relies on can fail: a counter without _total and a bad line.
        ok, said = promtool_check("# HELP x A thing.\n# TYPE x counter\nx 1\nnot a sample\n")
        self.assertFalse(ok, said)


class ShardStateChanges(unittest.TestCase):
    """Shard 5434 behind a proxy that refuses, then forwards, twice."""

    def test_state_and_errors_follow_and_each_change_is_logged_once(self):
        ports = harness.shard_ports()
        proxy = tcp_proxy.TcpProxy(ports[2])
        server = harness.Server(BINARY, ports=[ports[0], ports[1], proxy.port],
                                extra={"workers": 2, "log": {"format": "json", "access": True}})
        try:
            server.wait_ready()
            wait_state(server, "5434", "up")
            failed = 0
            for round_ in range(2):
                before = parse_metrics(scrape(server)[1])
                proxy.set_mode(tcp_proxy.REFUSE)
                wait_state(server, "5434", "down")
                for url in urls_on("5434", 20, f"outage{round_}"):
                    status, body = server.request("POST", "/urls?full_url=" + url)
                    self.assertEqual((status, body), (503, {"detail": "shard 5434 unavailable"}))
                    failed += 1
                # The others keep serving.
                for url in urls_on("5433", 3, f"healthy{round_}"):
                    self.assertEqual(server.request("POST", "/urls?full_url=" + url)[0], 200)
                after = parse_metrics(scrape(server)[1])
                errors = value(after, "shardurl_shard_errors_total", shard="5434", kind="unavailable") - \
                    value(before, "shardurl_shard_errors_total", shard="5434", kind="unavailable")
                self.assertGreaterEqual(errors, 20)
                answered = value(after, "shardurl_http_requests_total", route="/urls", status="503") - \
                    value(before, "shardurl_http_requests_total", route="/urls", status="503")
                self.assertEqual(answered, 20)
                for healthy in ("5432", "5433"):
                    self.assertEqual(value(after, "shardurl_shard_state", shard=healthy, state="up"), 1)
                proxy.set_mode(tcp_proxy.FORWARD)
                wait_state(server, "5434", "up")
                url = urls_on("5434", 1, f"back{round_}")[0]
                wait_for(lambda: server.request("POST", "/urls?full_url=" + url)[0] == 200, 10,
                         "5434 serving again")
            # Each change of state once: 5434 came up three times and went down twice, however
            # many requests failed on it meanwhile; the others came up once.
            events = collections.Counter((line.get("event"), line.get("shard")) for line in json_lines(server))
            self.assertEqual(events[("shard_down", "5434")], 2, server.output())
            self.assertEqual(events[("shard_up", "5434")], 3, server.output())
            for healthy in ("5432", "5433"):
                self.assertEqual(events[("shard_up", healthy)], 1)
                self.assertEqual(events[("shard_down", healthy)], 0)
            # The refused requests' access lines name the shard.
            wait_for(lambda: sum(1 for line in json_lines(server) if line["msg"] == "access"
                                 and line["status"] == 503) >= failed, 5, "access lines of the 503s")
            for line in json_lines(server):
                if line["msg"] == "access" and line["status"] == 503:
                    self.assertEqual(line["shard"], "5434")
        finally:
            self.assertEqual(server.stop(), 0)
            proxy.close()


class Logs(unittest.TestCase):
    # A target with a quote, a backslash and a byte that is no UTF-8: the line must stay valid.
    ODD_TARGET = b'/q"b\\c\xff'

    def exercise(self, server):
        """Requests of several kinds; returns {path: (method, status, shard or None)}."""
        expect = {}
        url = f"https://example.com/logs/{uuid.uuid4()}"
        status, body = server.request("POST", "/urls?full_url=" + url)
        self.assertEqual(status, 200)
        expect["/urls?full_url=" + url] = ("POST", 200, body["server"]["nodename"])
        url_id = body["url_id"]
        expect["/urls/" + url_id] = ("GET", 200, body["server"]["nodename"])
        self.assertEqual(server.request("GET", "/urls/" + url_id)[0], 200)
        expect["/" + url_id] = ("GET", 302, body["server"]["nodename"])
        self.assertEqual(server.request("GET", "/" + url_id)[0], 302)
        missing = "/urls/missing" + uuid.uuid4().hex[:8]
        expect[missing] = ("GET", 404, RING.get_node(missing.rsplit("/", 1)[1]))
        self.assertEqual(server.request("GET", missing)[0], 404)
        expect["/healthz?logs"] = ("GET", 200, None)
        self.assertEqual(server.request("GET", "/healthz?logs")[0], 200)
        self.assertEqual(raw_request(server, b"GET " + self.ODD_TARGET + b" HTTP/1.1\r\nHost: x\r\n\r\n"), 400)
        return expect

    def test_json_lines_and_access_lines(self):
        with harness.Server(BINARY, extra={"workers": 2, "log": {"format": "json", "access": True}}) as server:
            server.wait_ready()
            expect = self.exercise(server)
            odd = self.ODD_TARGET.decode("latin-1")  # bytes that are no UTF-8 read back as U+00XX

            def access():
                return {line["path"]: line for line in json_lines(server) if line["msg"] == "access"}
            # Written in batches: within the flush interval (100 ms), without the server stopping.
            wait_for(lambda: set(expect) | {odd} <= set(access()), 5, "the access lines")
            lines = json_lines(server)
            for line in lines:
                self.assertRegex(line["ts"], TIMESTAMP)
                self.assertIn(line["level"], ("info", "warning", "error"))
                self.assertIsInstance(line["msg"], str)
            got = access()
            for path, (method, status, shard) in expect.items():
                line = got[path]
                self.assertEqual((line["method"], line["status"], line.get("shard")), (method, status, shard), path)
                self.assertGreater(line["bytes"], 0)
                self.assertGreaterEqual(line["duration_ms"], 0)
                self.assertLess(line["duration_ms"], 10000)
            self.assertEqual((got[odd]["method"], got[odd]["status"]), ("GET", 400))
            # One line per request: no path of ours twice.
            paths = [line["path"] for line in lines if line["msg"] == "access"]
            for path in list(expect) + [odd]:
                self.assertEqual(paths.count(path), 1, path)
            self.assertTrue(any(line["msg"].startswith("serving http://") for line in lines))

    def test_text_lines_have_time_stamps_and_escaped_access_lines(self):
        with harness.Server(BINARY, extra={"log": {"format": "text", "access": True}}) as server:
            server.wait_ready()
            expect = self.exercise(server)
            wait_for(lambda: all(f" path={p} " in server.output() for p in expect), 5, "the access lines")
            for line in log_lines(server):
                stamp, _, rest = line.partition(" shardurl: ")
                self.assertRegex(stamp, TIMESTAMP, line)
                self.assertFalse(any(ord(c) < 0x20 or ord(c) == 0x7f for c in line), repr(line))
            out = server.output()
            for path, (method, status, shard) in expect.items():
                line = next(l for l in out.splitlines() if f" path={path} " in l)
                self.assertIn(f"access method={method} path={path} status={status} bytes=", line)
                self.assertRegex(line, r" duration_ms=\d+\.\d{3}")
                if shard:
                    self.assertTrue(line.endswith(f" shard={shard}"), line)
            self.assertIn(r'access method=GET path=/q"b\x5cc\xff status=400', out)

    def test_access_off_writes_no_access_line(self):
        for extra in ({"log": {"format": "json", "access": False}}, {"log": {"format": "json"}}):
            with harness.Server(BINARY, extra=extra) as server:
                server.wait_ready()
                self.exercise(server)
                time.sleep(0.5)  # past the access log's flush interval
                lines = json_lines(server)
                self.assertTrue(any(line["msg"].startswith("serving http://") for line in lines))
                self.assertEqual([line for line in lines if line["msg"] == "access"], [])

    def test_the_default_is_text_without_access_lines(self):
        with harness.Server(BINARY) as server:
            server.wait_ready()
            self.exercise(server)
            time.sleep(0.5)
            lines = log_lines(server)
            self.assertTrue(lines)
            for line in lines:
                self.assertRegex(line.partition(" shardurl: ")[0], TIMESTAMP, line)
                self.assertNotIn(" access method=", line)

    def test_a_bad_log_setting_is_refused_naming_it(self):
        for log, field in (({"format": "yaml"}, "log.format"), ({"access": "yes"}, "log.access"),
                           ({"colour": True}, "log.colour")):
            with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
                json.dump({"shards": [{"name": "a", "conninfo": "host=127.0.0.1"}], "log": log}, f)
                f.flush()
                out = subprocess.run([BINARY, "serve", "--config", f.name], capture_output=True,
                                     timeout=10)
            self.assertEqual(out.returncode, 2)
            self.assertIn(f"{field}: ", out.stderr.decode())


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
