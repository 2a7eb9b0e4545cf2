#!/usr/bin/python3
"""The product surface end to end: redirects, JSON creates and aliases, keyed deletes, URL
validation, OpenAPI coverage. Real binary, real shards, real sockets.

Usage (through ctest): /usr/bin/python3 test/e2e/product_test.py BINARY
"""
import http.client
import json
import socket
import sys
import unittest
import uuid

from uhashring import HashRing

import harness

BINARY = None
KEY = "test-key-0123456789abcdef"
RING = HashRing(nodes=harness.TUTORIAL_NAMES)


def raw(port, request, timeout=5):
    """Sends raw bytes and returns the raw response bytes (up to the close or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        try:
            while data := s.recv(65536):
                chunks.append(data)
        except socket.timeout:
            pass
        return b"".join(chunks)


class Client:
    def __init__(self, server):
        self.server = server

    def call(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            payload = json.dumps(body) if isinstance(body, (dict, list)) else body
            hdrs = dict(headers or {})
            if isinstance(body, (dict, list)):
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=payload, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            if data and not (resp.getheader("Content-Type") or "").startswith("application/json"):
                return resp.status, dict(resp.getheaders()), data.decode()  # /docs, /metrics
            return resp.status, dict(resp.getheaders()), (json.loads(data) if data else None)
        finally:
            conn.close()


class Product(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server(BINARY, extra={"api_keys": [KEY]})
        cls.c = Client(cls.server)

    @classmethod
    def tearDownClass(cls):
        output = cls.server.output()
        assert cls.server.stop() == 0, output

    def unique(self, tag):
        return f"https://example.com/{tag}/{uuid.uuid4()}"

    # 1. Redirect
    def test_get_and_head_of_an_id_redirect_with_302_and_no_cache_control(self):
        url = self.unique("redirect") + "?q=1&x=%20y"
        status, _, body = self.c.call("POST", "/urls", {"url": url})
        self.assertEqual(status, 201)
        for method in ("GET", "HEAD"):
            status, headers, _ = self.c.call(method, "/" + body["url_id"])
            self.assertEqual(status, 302)
            self.assertEqual(headers["Location"], url)
            self.assertNotIn("Cache-Control", headers)
        self.assertEqual(self.c.call("GET", "/noSuchId")[0], 404)
        self.assertEqual(self.c.call("GET", "/noSuchId")[2], {"detail": "Url with id: noSuchId was not found"})

    def test_the_redirect_status_is_configurable_and_permanent_ones_cache_privately(self):
        for code in (301, 307, 308):
            with harness.Server(BINARY, extra={"redirect_status": code}) as server:
                c = Client(server)
                _, _, body = c.call("POST", "/urls", {"url": self.unique(f"status{code}")})
                status, headers, _ = c.call("GET", "/" + body["url_id"])
                self.assertEqual(status, code)
                if code in (301, 308):
                    self.assertEqual(headers.get("Cache-Control"), "private, max-age=90")
                else:
                    self.assertNotIn("Cache-Control", headers)

    def test_location_never_carries_raw_control_characters_for_unvalidated_rows(self):
        evil = "https://example.com/x\r\nSet-Cookie: pwned=1\r\n\r\n<script>"
        url_id = "evil" + uuid.uuid4().hex[:8]
        port = harness.shard_ports()[harness.TUTORIAL_NAMES.index(RING.get_node(url_id))]
        harness.psql(port, "INSERT INTO url_table (url, url_id) VALUES "
                           f"(E'{evil.encode('unicode_escape').decode()}', '{url_id}')")
        response = raw(self.server.port, f"GET /{url_id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = response.split(b"\r\n\r\n", 1)[0]
        # A URL with control characters is never redirected to: no Location at all, no split.
        self.assertTrue(head.startswith(b"HTTP/1.1 409"), response)
        self.assertNotIn(b"Set-Cookie", head)
        self.assertNotIn(b"Location", head)
        status, _, body = self.c.call("GET", "/urls/" + url_id)
        self.assertEqual((status, body["url"]), (200, evil))

    # 2. JSON create, aliases
    def test_json_create_is_201_then_200_with_the_same_shape(self):
        url = self.unique("json")
        first = self.c.call("POST", "/urls", {"url": url})
        second = self.c.call("POST", "/urls", {"url": url})
        self.assertEqual((first[0], second[0]), (201, 200))
        self.assertEqual(first[2], second[2])
        self.assertEqual(list(first[2]), ["url_id", "url", "server"])
        self.assertEqual(first[2]["server"], RING.get(first[2]["url_id"]))

    def test_an_alias_is_placed_by_the_ring_and_refused_for_another_url(self):
        alias = "a-" + uuid.uuid4().hex[:12]
        url = self.unique("alias")
        status, _, body = self.c.call("POST", "/urls", {"url": url, "alias": alias})
        self.assertEqual(status, 201)
        self.assertEqual(body["url_id"], alias)
        self.assertEqual(body["server"], RING.get(alias))
        self.assertEqual(self.c.call("POST", "/urls", {"url": url, "alias": alias})[0], 200)
        status, _, body = self.c.call("POST", "/urls", {"url": self.unique("other"), "alias": alias})
        self.assertEqual(status, 409)
        self.assertIn(alias, body["detail"])
        status, headers, _ = self.c.call("GET", "/" + alias)
        self.assertEqual((status, headers["Location"]), (302, url))

    def test_bad_aliases_are_422(self):
        for alias in ["", "x" * 65, "a/b", "a b", "é", "urls", "healthz", "readyz", "metrics",
                      "openapi.json", "docs"]:
            with self.subTest(alias=alias):
                status, headers, body = self.c.call("POST", "/urls", {"url": self.unique("bad"), "alias": alias})
                self.assertEqual(status, 422)
                self.assertIsInstance(body["detail"], str)
                self.assertEqual(headers["Content-Type"], "application/json")

    def test_bad_bodies_are_422(self):
        for body in ['nope', '[]', '{"alias": "x"}', '{"url": 5}', '{"url": "https://a.b/", "extra": 1}']:
            with self.subTest(body=body):
                status, _, answer = self.c.call("POST", "/urls", body, {"Content-Type": "application/json"})
                self.assertEqual(status, 422)
                self.assertIsInstance(answer["detail"], str)

    # 3. Delete
    def test_delete_needs_a_key_and_then_the_link_is_gone_at_once(self):
        url = self.unique("delete")
        _, _, body = self.c.call("POST", "/urls", {"url": url})
        url_id = body["url_id"]
        self.assertEqual(self.c.call("DELETE", "/urls/" + url_id)[0], 401)
        self.assertEqual(self.c.call("DELETE", "/urls/" + url_id, headers={"X-Api-Key": "wrong"})[0], 403)
        self.assertEqual(self.c.call("DELETE", "/urls/" + url_id, headers={"X-Api-Key": KEY + "x"})[0], 403)
        self.assertEqual(self.c.call("GET", "/urls/" + url_id)[0], 200)
        status, _, body = self.c.call("DELETE", "/urls/" + url_id, headers={"X-Api-Key": KEY})
        self.assertEqual((status, body), (204, None))
        gone = {"detail": f"Url with id: {url_id} was deleted"}
        self.assertEqual(self.c.call("GET", "/urls/" + url_id)[::2], (410, gone))
        self.assertEqual(self.c.call("GET", "/" + url_id)[::2], (410, gone))
        self.assertEqual(self.c.call("DELETE", "/urls/" + url_id, headers={"X-Api-Key": KEY})[0], 410)
        self.assertEqual(self.c.call("DELETE", "/urls/noSuchId", headers={"X-Api-Key": KEY})[0], 404)

    def test_keys_can_come_from_the_environment(self):
        import os
        os.environ["SHARDURL_API_KEYS"] = "env-key-aaaaaaaaaaaaaaaa, second-env-key-bbbbbbbb"
        try:
            with harness.Server(BINARY) as server:
                c = Client(server)
                _, _, body = c.call("POST", "/urls", {"url": self.unique("envkey")})
                self.assertEqual(c.call("DELETE", "/urls/" + body["url_id"],
                                        headers={"X-Api-Key": "second-env-key-bbbbbbbb"})[0], 204)
        finally:
            del os.environ["SHARDURL_API_KEYS"]

    # 4. URL validation
    def test_urls_that_cannot_be_stored_are_422_with_a_reason(self):
        cases = ["javascript:alert(1)", "data:text/html,<b>x</b>", "ftp://example.com/f", "/relative",
                 "example.com", "https://", "https://exa mple.com/", "https://a.b/\x01",
                 "https://a.b/" + "x" * 2040, ""]
        for url in cases:
            with self.subTest(url=url[:40]):
                status, _, body = self.c.call("POST", "/urls", {"url": url})
                self.assertEqual(status, 422)
                self.assertIsInstance(body["detail"], str)
                self.assertTrue(body["detail"])
        status, _, body = self.c.call("POST", "/urls?full_url=javascript:alert(1)")
        self.assertEqual(status, 422)

    def test_a_url_is_stored_and_returned_exactly_as_given(self):
        url = "HTTPS://Example.COM:8443/a/../b/%7Euser?q=1&r=%2F#frag"
        status, _, body = self.c.call("POST", "/urls", {"url": url})
        self.assertIn(status, (200, 201))
        self.assertEqual(body["url"], url)
        self.assertEqual(self.c.call("GET", "/urls/" + body["url_id"])[2]["url"], url)

    # 5. Methods and errors
    def test_unknown_methods_are_405_with_allow(self):
        for method, path, allow in [("PUT", "/urls", "POST"), ("PATCH", "/urls/abc", "GET, HEAD, DELETE"),
                                    ("POST", "/healthz", "GET, HEAD"), ("DELETE", "/abc", "GET, HEAD")]:
            with self.subTest(method=method, path=path):
                status, headers, body = self.c.call(method, path)
                self.assertEqual((status, headers.get("Allow")), (405, allow))
                self.assertIn("detail", body)

    def test_every_response_carries_a_date(self):
        import email.utils
        import time
        for method, path in [("GET", "/healthz"), ("GET", "/nope"), ("POST", "/urls")]:
            _, headers, _ = self.c.call(method, path)
            when = email.utils.parsedate_to_datetime(headers["Date"]).timestamp()
            self.assertLess(abs(when - time.time()), 5, headers["Date"])
            self.assertTrue(headers["Date"].endswith(" GMT"))

    def test_an_id_over_64_characters_is_400(self):
        self.assertEqual(self.c.call("GET", "/urls/" + "a" * 65)[0], 400)
        self.assertEqual(self.c.call("GET", "/" + "a" * 65)[0], 400)
        self.assertEqual(self.c.call("GET", "/urls/" + "a" * 64)[0], 404)

    # 6. OpenAPI
    def test_every_documented_route_is_answered(self):
        status, headers, doc = self.c.call("GET", "/openapi.json")
        self.assertEqual(status, 200)
        self.assertTrue(doc["openapi"].startswith("3."))
        for path, item in doc["paths"].items():
            for method, op in item.items():
                if method == "parameters":
                    continue
                with self.subTest(method=method, path=path):
                    _, _, made = self.c.call("POST", "/urls", {"url": self.unique("openapi")})
                    concrete = path.replace("{url_id}", made["url_id"])
                    hdrs = {"X-Api-Key": KEY} if method == "delete" else {}
                    body = {"url": self.unique("doc")} if method == "post" else None
                    status, _, _ = self.c.call(method.upper(), concrete, body, hdrs)
                    self.assertIn(str(status), op["responses"], f"{method} {concrete} answered {status}")
                    self.assertLess(status, 400, f"{method} {concrete} answered {status}")


class Workers(unittest.TestCase):
    """Several event loops: connections are spread over them, each with its own cache."""

    WORKERS = 4

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server(BINARY, extra={"api_keys": [KEY], "workers": cls.WORKERS})
        cls.c = Client(cls.server)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_the_log_names_the_workers(self):
        self.assertIn(f"{self.WORKERS} workers", self.server.output())

    def test_a_delete_through_one_worker_evicts_the_link_from_every_workers_cache(self):
        url = "https://example.com/workers/" + uuid.uuid4().hex
        _, _, body = self.c.call("POST", "/urls", {"url": url})
        url_id = body["url_id"]
        # Every request is a new connection, and connections go to the workers in turn: twice
        # round puts the link in every worker's cache.
        for _ in range(2 * self.WORKERS):
            self.assertEqual(self.c.call("GET", "/urls/" + url_id)[0], 200)
            self.assertEqual(self.c.call("GET", "/" + url_id)[0], 302)
        self.assertEqual(self.c.call("DELETE", "/urls/" + url_id, headers={"X-Api-Key": KEY})[0], 204)
        for _ in range(2 * self.WORKERS):
            self.assertEqual(self.c.call("GET", "/urls/" + url_id)[0], 410)
            self.assertEqual(self.c.call("GET", "/" + url_id)[0], 410)

    def test_concurrent_creates_of_one_url_from_every_worker_agree_on_one_row(self):
        import concurrent.futures
        url = "https://example.com/workers/same/" + uuid.uuid4().hex
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: self.c.call("POST", "/urls", {"url": url}), range(64)))
        statuses = sorted(a[0] for a in answers)
        self.assertEqual(statuses.count(201), 1, statuses)
        self.assertEqual(statuses.count(200), 63, statuses)
        self.assertEqual(len({a[2]["url_id"] for a in answers}), 1)
        port = harness.shard_ports()[harness.TUTORIAL_NAMES.index(RING.get_node(answers[0][2]["url_id"]))]
        rows = harness.psql(port, f"SELECT count(*) FROM url_table WHERE url = '{url}'")
        self.assertEqual(rows.strip(), "1")


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
