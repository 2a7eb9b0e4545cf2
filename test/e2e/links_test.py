#!/usr/bin/python3
"""Exact answers, end to end: what a link means for rows the tutorial left, for the chain of
derived ids, for deleted links, and across instances. Real binary, real shards, real sockets.

Usage (through ctest): /usr/bin/python3 test/e2e/links_test.py BINARY
"""
import base64
import concurrent.futures
import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
import unittest
import uuid

from uhashring import HashRing

import harness

sys.path.insert(0, os.path.join(harness.REPO, "test", "fault"))
import tcp_proxy  # noqa: E402

BINARY = None
KEY = "links-test-key-0123456789"
NAMES = harness.TUTORIAL_NAMES
RING = HashRing(nodes=NAMES)


def sha(url):
    return hashlib.sha256(url.encode()).digest()


def tutorial_id(url):
    """The tutorial's id: 5 characters of standard base64 (it may hold '+' and '/')."""
    return base64.b64encode(sha(url)).decode()[:5]


def derived(url, length=7):
    return base64.urlsafe_b64encode(sha(url)).decode().rstrip("=")[:length]


def port_of(url_id):
    return harness.shard_ports()[NAMES.index(RING.get_node(url_id))]


def path_id(url_id):
    return url_id.replace("%", "%25").replace("/", "%2F").replace("+", "%2B")


class Client:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            hdrs = dict(headers or {})
            if isinstance(body, dict):
                body = json.dumps(body)
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), (json.loads(data) if data else None)
        finally:
            conn.close()

    def post(self, url):
        return self.call("POST", "/urls?full_url=" + url.replace("%", "%25").replace("&", "%26")
                         .replace("+", "%2B").replace("#", "%23").replace(" ", "%20"))


def rows_with_url(url, db="postgres"):
    total = 0
    for port in harness.shard_ports():
        total += int(harness.psql(port, "SELECT count(*) FROM url_table WHERE url = "
                                        + "'" + url.replace("'", "''") + "'", db=db))
    return total


def unique(tag):
    return f"https://example.com/{tag}/{uuid.uuid4().hex}"


class TutorialShards(unittest.TestCase):
    """Shards the tutorial filled (its table, its ids, its unvalidated rows), upgraded by initdb/."""

    # URLs the tutorial stored under its own ids, among them ids with '+' and '/'.
    STORED = ["https://www.postgresql.org/", "https://www.google.com/", "https://www.dev.to/"]
    # Rows that must never be answered with a redirect.
    UNSAFE = ["", "javascript:alert(1)", "JavaScript:alert(document.cookie)", "mailto:a@example.com",
              "data:text/html,<script>alert(1)</script>", "/relative/path", "relative", "//evil.example/x",
              "example.com", "ftp://files.example/x", "https://user:pw@bank.example@evil.example/",
              "http://", " https://lead.example/", "https://tab.example/\tx", "vbscript:msgbox(1)",
              "file:///etc/passwd", "https://back.example\\evil.example/"]

    @classmethod
    def setUpClass(cls):
        cls.db = f"links_tut_{os.getpid()}"
        i = 0
        while not any("+" in tutorial_id(u) or "/" in tutorial_id(u) for u in cls.STORED):
            cls.STORED.append(f"https://example.org/tutorial/{i}")
            i += 1
        cls.unsafe_ids = {}
        for port in harness.shard_ports():
            harness.psql(port, f"DROP DATABASE IF EXISTS {cls.db}")
            harness.psql(port, f"CREATE DATABASE {cls.db}")
            harness.psql(port, "CREATE TABLE URL_TABLE (id serial NOT NULL PRIMARY KEY, URL text, "
                               "URL_ID varchar(5))", db=cls.db)

        def tutorial_insert(url, url_id):
            # What the tutorial's POST did: the row goes where uhashring puts its id.
            harness.psql(port_of(url_id), "INSERT INTO url_table (url, url_id) VALUES ("
                         + "'" + url.replace("'", "''") + "', '" + url_id + "')", db=cls.db)

        for url in cls.STORED:
            tutorial_insert(url, tutorial_id(url))
        for n, url in enumerate(cls.UNSAFE):
            url_id = f"u{n:03d}{'+/'[n % 2]}"  # 5 characters, like the tutorial's
            cls.unsafe_ids[url] = url_id
            tutorial_insert(url, url_id)
        # A tutorial id holding some other URL (a 5-character collision, or a hand-made row).
        cls.collided = unique("collided")
        tutorial_insert("https://example.com/the-other-url", tutorial_id(cls.collided))
        cls.upgrade_log = ""
        for port in harness.shard_ports():
            for name in sorted(os.listdir(os.path.join(harness.REPO, "initdb"))):
                out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                                      "-p", str(port), "-U", "postgres", "-d", cls.db, "-f",
                                      os.path.join(harness.REPO, "initdb", name)],
                                     capture_output=True, text=True, timeout=60, check=True)
                cls.upgrade_log += out.stderr
        cls.server = harness.Server(BINARY, db=cls.db, extra={"api_keys": [KEY]})
        cls.server.wait_ready()
        cls.c = Client(cls.server.port)

    @classmethod
    def tearDownClass(cls):
        output = cls.server.output()
        assert cls.server.stop() == 0, output
        for port in harness.shard_ports():
            harness.psql(port, f"DROP DATABASE IF EXISTS {cls.db}")

    def test_a_url_the_tutorial_stored_is_answered_with_its_tutorial_id_and_adds_no_row(self):
        for url in self.STORED:
            with self.subTest(url=url):
                for _ in range(2):
                    status, _, body = self.c.post(url)
                    self.assertEqual((status, body["url_id"], body["url"]), (200, tutorial_id(url), url))
                    self.assertEqual(body["server"]["hostname"], RING.get_node(tutorial_id(url)))
                status, _, body = self.c.call("POST", "/urls", {"url": url})
                self.assertEqual((status, body["url_id"]), (200, tutorial_id(url)))
                self.assertEqual(rows_with_url(url, self.db), 1)
                status, _, body = self.c.call("GET", "/urls/" + path_id(tutorial_id(url)))
                self.assertEqual((status, body["url"]), (200, url))

    def test_concurrent_creates_of_a_tutorial_url_all_get_its_tutorial_id(self):
        url = self.STORED[0]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: self.c.post(url), range(48)))
        self.assertEqual({(a[0], a[2]["url_id"]) for a in answers}, {(200, tutorial_id(url))})
        self.assertEqual(rows_with_url(url, self.db), 1)

    def test_a_tutorial_id_holding_another_url_is_not_the_urls_id(self):
        status, _, body = self.c.post(self.collided)
        self.assertEqual((status, body["url_id"]), (200, derived(self.collided)))

    def test_rows_the_tutorial_never_validated_are_never_redirected_to(self):
        for status_config in (None, 301, 308):
            server = self.server if status_config is None else harness.Server(
                BINARY, db=self.db, extra={"redirect_status": status_config})
            try:
                c = Client(server.port)
                for url, url_id in self.unsafe_ids.items():
                    with self.subTest(url=url, redirect_status=status_config):
                        for method in ("GET", "HEAD", "GET"):  # the second GET may be a cache hit
                            status, headers, body = c.call(method, "/" + path_id(url_id))
                            self.assertEqual(status, 409, (url, status, headers))
                            self.assertNotIn("Location", headers)
                            if method == "GET":
                                self.assertIn(url_id, body["detail"])
                        status, _, body = c.call("GET", "/urls/" + path_id(url_id))
                        self.assertEqual((status, body["url"]), (200, url))
            finally:
                if server is not self.server:
                    server.stop()

    def test_the_upgrade_reports_what_it_found(self):
        self.assertIn("hold the tutorial's own id of their URL", self.upgrade_log)
        self.assertIn("never redirected to", self.upgrade_log)
        counts = [int(harness.psql(port, "SELECT value FROM shardurl_meta WHERE key = 'tutorial_ids'",
                                   db=self.db)) for port in harness.shard_ports()]
        expected = [0, 0, 0]
        for url in self.STORED:
            expected[NAMES.index(RING.get_node(tutorial_id(url)))] += 1
        self.assertEqual(counts, expected)


class Chain(unittest.TestCase):
    """Derived ids: a URL's place in the chain never moves, and deleted ids keep theirs."""

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server(BINARY, extra={"api_keys": [KEY]})
        cls.server.wait_ready()
        cls.c = Client(cls.server.port)

    @classmethod
    def tearDownClass(cls):
        output = cls.server.output()
        assert cls.server.stop() == 0, output

    def delete(self, url_id, key=KEY):
        return self.c.call("DELETE", "/urls/" + path_id(url_id), headers={"X-Api-Key": key})[0]

    def test_a_url_pushed_to_8_characters_stays_there_when_the_7_character_link_is_deleted(self):
        url = unique("pushed")
        other = unique("holder")
        # Another URL holds this URL's 7-character prefix (as an alias or an old row could).
        harness.psql(port_of(derived(url)), "INSERT INTO url_table (url, url_id) VALUES "
                                            f"('{other}', '{derived(url)}')")
        self.assertEqual(self.c.post(url)[2]["url_id"], derived(url, 8))
        self.assertEqual(self.delete(derived(url)), 204)
        for _ in range(2):
            status, _, body = self.c.post(url)
            self.assertEqual((status, body["url_id"]), (200, derived(url, 8)))
        self.assertEqual(self.c.call("GET", "/urls/" + derived(url))[0], 410)
        self.assertEqual(rows_with_url(url), 1)

    def test_a_deleted_link_is_never_answered_again_and_its_url_gets_the_next_id(self):
        url = unique("recreate")
        status, _, body = self.c.call("POST", "/urls", {"url": url})
        self.assertEqual((status, body["url_id"]), (201, derived(url)))
        self.assertEqual(self.delete(derived(url)), 204)
        status, _, body = self.c.call("POST", "/urls", {"url": url})
        self.assertEqual((status, body["url_id"]), (201, derived(url, 8)))
        self.assertEqual(self.c.post(url)[2]["url_id"], derived(url, 8))
        for path in ("/urls/", "/"):
            status, _, body = self.c.call("GET", path + derived(url))
            self.assertEqual((status, body), (410, {"detail": f"Url with id: {derived(url)} was deleted"}))
        self.assertEqual(self.delete(derived(url)), 410)
        self.assertEqual(self.c.call("GET", "/" + derived(url, 8))[0], 302)

    def test_a_deleted_alias_cannot_be_claimed_anonymously_for_any_url(self):
        alias = "gone-" + uuid.uuid4().hex[:10]
        url = unique("alias")
        self.assertEqual(self.c.call("POST", "/urls", {"url": url, "alias": alias})[0], 201)
        self.assertEqual(self.delete(alias), 204)
        for claim in (url, unique("hijack")):
            status, _, body = self.c.call("POST", "/urls", {"url": claim, "alias": alias})
            self.assertEqual(status, 410, body)
            self.assertIsInstance(body["detail"], str)
            status, _, _ = self.c.call("POST", "/urls", {"url": claim, "alias": alias},
                                       {"X-Api-Key": "not-the-key-at-all"})
            self.assertEqual(status, 403)
        self.assertEqual(self.c.call("GET", "/" + alias)[0], 410)

    def test_a_derived_id_of_a_deleted_link_cannot_be_claimed_as_an_alias(self):
        url = unique("derived-alias")
        url_id = self.c.post(url)[2]["url_id"]
        self.assertEqual(self.delete(url_id), 204)
        status, _, _ = self.c.call("POST", "/urls", {"url": unique("hijack"), "alias": url_id})
        self.assertEqual(status, 410)
        self.assertEqual(self.c.call("GET", "/urls/" + url_id)[0], 410)

    def test_a_key_holder_restores_a_deleted_link(self):
        alias = "restore-" + uuid.uuid4().hex[:10]
        url, replacement = unique("restore"), unique("restored")
        self.assertEqual(self.c.call("POST", "/urls", {"url": url, "alias": alias})[0], 201)
        for _ in range(3):
            self.assertEqual(self.c.call("GET", "/" + alias)[0], 302)  # cached now
        self.assertEqual(self.delete(alias), 204)
        self.assertEqual(self.c.call("GET", "/" + alias)[0], 410)
        status, _, body = self.c.call("POST", "/urls", {"url": replacement, "alias": alias},
                                      {"X-Api-Key": KEY})
        self.assertEqual((status, body["url_id"], body["url"]), (201, alias, replacement))
        status, headers, _ = self.c.call("GET", "/" + alias)
        self.assertEqual((status, headers["Location"]), (302, replacement))
        # Live again: the same claim is an ordinary 200 now, another URL a 409.
        self.assertEqual(self.c.call("POST", "/urls", {"url": replacement, "alias": alias})[0], 200)
        self.assertEqual(self.c.call("POST", "/urls", {"url": url, "alias": alias})[0], 409)

    def test_deleting_twice_and_deleting_nothing(self):
        url_id = self.c.post(unique("twice"))[2]["url_id"]
        self.assertEqual(self.delete(url_id), 204)
        self.assertEqual(self.delete(url_id), 410)
        self.assertEqual(self.delete("never-" + uuid.uuid4().hex[:8]), 404)


def wait_until_not(client, path, status, limit=3.0, every=0.01, rounds=4):
    """Seconds from now until the last time GET path answered `status`, once `rounds` answers in
    a row (every worker of the instance, in turn) did not; None if that takes over `limit`."""
    start = time.monotonic()
    last_seen = 0.0
    streak = 0
    while time.monotonic() - start < limit:
        if client.call("GET", path)[0] == status:
            last_seen = time.monotonic() - start
            streak = 0
        else:
            streak += 1
            if streak >= rounds:
                return last_seen
        time.sleep(every)
    return None


class Instances(unittest.TestCase):
    """Two shardurl processes on the same shards: a change through one reaches the other's caches
    (every worker's) within a second, also when the other's notification channel is cut."""

    @classmethod
    def setUpClass(cls):
        cls.a = harness.Server(BINARY, extra={"api_keys": [KEY]})
        cls.b = harness.Server(BINARY, extra={"workers": 3, "cache": {"ttl_s": 3600}})
        for server in (cls.a, cls.b):
            server.wait_ready()
        cls.ca, cls.cb = Client(cls.a.port), Client(cls.b.port)

    @classmethod
    def tearDownClass(cls):
        for server in (cls.a, cls.b):
            output = server.output()
            assert server.stop() == 0, output

    def warm(self, client, ids, rounds=6):
        for _ in range(rounds):  # connections go to the workers in turn: every worker caches
            for url_id in ids:
                self.assertEqual(client.call("GET", "/" + url_id)[0], 302)

    def test_a_delete_through_one_instance_stops_the_others_redirects_within_a_second(self):
        ids = [self.ca.post(unique("instances"))[2]["url_id"] for _ in range(12)]
        self.warm(self.cb, ids)
        took = []
        for url_id in ids:
            self.assertEqual(self.ca.call("DELETE", "/urls/" + url_id, headers={"X-Api-Key": KEY})[0], 204)
            took.append(wait_until_not(self.cb, "/" + url_id, 302))
            self.assertIsNotNone(took[-1], url_id)
            for _ in range(6):  # every worker, twice
                self.assertEqual(self.cb.call("GET", "/" + url_id)[0], 410)
        print(f"other instance stopped redirecting after: max {max(took) * 1000:.0f} ms, "
              f"all {[round(t * 1000) for t in took]}", file=sys.stderr)
        self.assertLess(max(took), 1.0)

    def test_a_restore_through_one_instance_is_seen_by_the_other(self):
        alias = "inst-" + uuid.uuid4().hex[:10]
        first, second = unique("first"), unique("second")
        self.assertEqual(self.ca.call("POST", "/urls", {"url": first, "alias": alias})[0], 201)
        self.warm(self.cb, [alias])
        self.assertEqual(self.ca.call("DELETE", "/urls/" + alias, headers={"X-Api-Key": KEY})[0], 204)
        self.assertIsNotNone(wait_until_not(self.cb, "/" + alias, 302, limit=1.0))
        self.assertEqual(self.ca.call("POST", "/urls", {"url": second, "alias": alias},
                                      {"X-Api-Key": KEY})[0], 201)
        for _ in range(6):
            status, headers, _ = self.cb.call("GET", "/" + alias)
            self.assertEqual((status, headers.get("Location")), (302, second))


class CutChannel(unittest.TestCase):
    """The second instance LISTENs through proxies that the test breaks: a hang (silence) and a
    reset. Its cache must not answer for the cut shard beyond a second, and serves again after."""

    def run_cut(self, mode, hold=0.0):
        proxies = {name: tcp_proxy.TcpProxy(port) for name, port in zip(NAMES, harness.shard_ports())}
        extra = {name: {"listen_conninfo": f"host=127.0.0.1 port={p.port} user=postgres dbname=postgres"}
                 for name, p in proxies.items()}
        a = harness.Server(BINARY, extra={"api_keys": [KEY]})
        b = harness.Server(BINARY, extra={"workers": 2, "cache": {"ttl_s": 3600}}, shard_extra=extra)
        try:
            ca, cb = Client(a.port), Client(b.port)
            deadline = time.monotonic() + 5
            while b.output().count("change notifications on") < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            ids = [ca.post(unique("cut"))[2]["url_id"] for _ in range(9)]
            for _ in range(4):
                for url_id in ids:
                    self.assertEqual(cb.call("GET", "/" + url_id)[0], 302)
            for p in proxies.values():
                p.set_mode(mode)
            took = []
            for url_id in ids:
                self.assertEqual(ca.call("DELETE", "/urls/" + url_id, headers={"X-Api-Key": KEY})[0], 204)
                took.append(wait_until_not(cb, "/" + url_id, 302))
                self.assertIsNotNone(took[-1], url_id)
                self.assertEqual(cb.call("GET", "/" + url_id)[0], 410)
            print(f"{mode}: cached answers stopped after max {max(took) * 1000:.0f} ms",
                  file=sys.stderr)
            self.assertLess(max(took), 1.0)
            # The channel heals. A short silence passes without a new session (what the proxy held
            # arrives in order); a longer one, or a reset, needs a new session, which is logged.
            time.sleep(hold)
            for p in proxies.values():
                p.set_mode(tcp_proxy.FORWARD)
            if mode == tcp_proxy.REFUSE or hold > 2.5:
                deadline = time.monotonic() + 10
                while b.output().count("change notifications back") < 3 and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertEqual(b.output().count("change notifications back"), 3, b.output())
                self.assertEqual(b.output().count("change notifications lost"), 3, b.output())
            time.sleep(1.0)
            fresh = ca.post(unique("after-cut"))[2]["url_id"]
            for _ in range(4):
                self.assertEqual(cb.call("GET", "/" + fresh)[0], 302)
            self.assertEqual(ca.call("DELETE", "/urls/" + fresh, headers={"X-Api-Key": KEY})[0], 204)
            self.assertLess(wait_until_not(cb, "/" + fresh, 302), 1.0)
        finally:
            for server in (a, b):
                server.stop()
            for p in proxies.values():
                p.close()

    def test_a_silent_channel(self):
        self.run_cut(tcp_proxy.HANG)

    def test_a_channel_silent_past_the_query_deadline(self):
        self.run_cut(tcp_proxy.HANG, hold=3.0)

    def test_a_reset_channel(self):
        self.run_cut(tcp_proxy.REFUSE)


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
