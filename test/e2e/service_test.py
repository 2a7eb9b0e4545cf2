#!/usr/bin/python3
"""The tutorial's API end to end: the real binary, real shards, a real HTTP client.

Usage (scripts/test runs it through ctest): /usr/bin/python3 test/e2e/service_test.py BINARY
"""
import base64
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import socket
import sys
import unittest
import urllib.parse
import uuid

from uhashring import HashRing

import harness

BINARY = None
RING = HashRing(nodes=harness.TUTORIAL_NAMES)


def shard_port(url_id):
    """The real port of the shard the tutorial's ring picks for url_id."""
    return harness.shard_ports()[harness.TUTORIAL_NAMES.index(RING.get_node(url_id))]


def expected_id(url, length=7):
    return base64.urlsafe_b64encode(hashlib.sha256(url.encode()).digest()).decode()[:length]


def read_response(reader):
    """One HTTP/1.1 response with a Content-Length body, read off a raw socket: (status, JSON)."""
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, json.loads(reader.read(length))


def quoted(url_id):
    return urllib.parse.quote(url_id, safe="")


class TutorialApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server(BINARY)

    @classmethod
    def tearDownClass(cls):
        output = cls.server.output()
        code = cls.server.stop()
        assert code == 0, f"shardurl exited {code}:\n{output}"

    def post(self, url):
        return self.server.request("POST", "/urls?full_url=" + url)

    def test_the_tutorials_three_posts_and_its_get(self):
        for url in ["https://www.postgresql.org/", "https://www.google.com/", "https://www.dev.to/"]:
            status, body = self.post(url)
            self.assertEqual(status, 200, body)
            self.assertEqual(list(body), ["url_id", "url", "server"])
            self.assertEqual(body["url"], url)
            self.assertEqual(body["url_id"], expected_id(url))
            # The server object is uhashring's node dict for the id, as the tutorial returned it.
            self.assertEqual(body["server"], RING.get(body["url_id"]))
            # And the row really is on that shard.
            self.assertEqual(harness.psql(shard_port(body["url_id"]),
                                          f"SELECT url FROM url_table WHERE url_id = '{body['url_id']}'"), url)
        status, body = self.server.request("GET", "/urls/" + expected_id("https://www.google.com/"))
        self.assertEqual(status, 200)
        self.assertEqual(body, {"url_id": "0OGWoMJ", "url": "https://www.google.com/",
                                "server": RING.get("0OGWoMJ")})

    def test_unknown_id_is_404_with_the_tutorials_detail(self):
        status, body = self.server.request("GET", "/urls/doesNotExist")
        self.assertEqual(status, 404)
        self.assertEqual(body, {"detail": "Url with id: doesNotExist was not found"})

    def test_posting_the_same_url_again_returns_the_same_id_and_adds_no_row(self):
        url = f"https://example.com/idempotent/{uuid.uuid4()}"
        first = self.post(url)
        second = self.post(url)
        self.assertEqual(first, second)
        url_id = first[1]["url_id"]
        count = harness.psql(shard_port(url_id), f"SELECT count(*) FROM url_table WHERE url = '{url}'")
        self.assertEqual(count, "1")

    def test_a_missing_full_url_is_fastapis_422(self):
        # FastAPI with Pydantic v2 (the tutorial's `uv add fastapi`), keys in its order.
        status, body = self.server.request("POST", "/urls")
        self.assertEqual(status, 422)
        self.assertEqual(body, {"detail": [{"type": "missing", "loc": ["query", "full_url"],
                                            "msg": "Field required", "input": None}]})
        self.assertEqual(list(body["detail"][0]), ["type", "loc", "msg", "input"])

    def test_query_values_are_decoded_like_fastapi(self):
        url = "https://example.com/search?q=a%2Bb&lang=en&x=" + uuid.uuid4().hex
        status, body = self.post(urllib.parse.quote(url, safe=""))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["url"], url)
        status, body = self.server.request("GET", "/urls/" + quoted(body["url_id"]))
        self.assertEqual((status, body["url"]), (200, url))
        # '+' is a space in a query, as FastAPI reads it; a URL with a space is then refused.
        status, body = self.post("https://example.com/a+b")
        self.assertEqual(status, 422)
        self.assertIn("whitespace", body["detail"])

    def test_an_id_taken_by_another_url_moves_to_a_longer_prefix(self):
        url = f"https://example.com/clash/{uuid.uuid4()}"
        squatter = expected_id(url)
        harness.psql(shard_port(squatter),
                     f"INSERT INTO url_table (url, url_id) VALUES ('https://squatter.example/', '{squatter}')")
        status, body = self.post(url)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["url_id"], expected_id(url, 8))
        self.assertEqual(body["server"], RING.get(body["url_id"]))
        self.assertEqual(self.server.request("GET", "/urls/" + squatter)[1]["url"], "https://squatter.example/")
        self.assertEqual(self.post(url)[1]["url_id"], expected_id(url, 8))  # and stays there

    def test_a_keep_alive_connection_carries_many_requests(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        conn.connect()
        local = conn.sock.getsockname()
        for i in range(200):
            conn.request("POST", f"/urls?full_url=https://example.com/keepalive/{i}")
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 200)
            self.assertEqual(conn.sock.getsockname(), local, "the connection was replaced")
        conn.close()

    def test_pipelined_requests_are_answered_in_order(self):
        urls = [f"https://example.com/pipelined/{i}/{uuid.uuid4()}" for i in range(20)]
        wire = b"".join(f"POST /urls?full_url={u} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
                        for u in urls)
        wire += b"GET /urls/nothingHere HTTP/1.1\r\nHost: x\r\n\r\n"
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as sock:
            sock.sendall(wire)  # every request in one write, before reading any answer
            reader = sock.makefile("rb")
            answers = [read_response(reader) for _ in range(len(urls) + 1)]
        for url, (status, body) in zip(urls, answers):
            self.assertEqual(status, 200)
            self.assertEqual(body["url"], url)
        self.assertEqual(answers[-1][0], 404)

    def test_healthz(self):
        self.assertEqual(self.server.request("GET", "/healthz")[0], 200)


class ReadDeadline(unittest.TestCase):
    """http.read_timeout_ms bounds a whole request, and an idle keep-alive connection."""
    TIMEOUT_S = 0.4

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server(BINARY, extra={"http": {"read_timeout_ms": 400}})

    @classmethod
    def tearDownClass(cls):
        output = cls.server.output()
        code = cls.server.stop()
        assert code == 0, f"shardurl exited {code}:\n{output}"

    def closed_after(self, sock, send_every=None, chunk=b""):
        """Seconds until the server closes `sock` (reads EOF or a reset), sending `chunk` every
        `send_every` seconds meanwhile."""
        started = time.monotonic()
        sock.settimeout(send_every or 5)
        while time.monotonic() - started < 5:
            try:
                if sock.recv(4096) == b"":
                    return time.monotonic() - started
            except socket.timeout:
                try:
                    sock.sendall(chunk)
                except OSError:
                    return time.monotonic() - started
            except ConnectionResetError:
                return time.monotonic() - started
        self.fail("the server kept the connection open for 5 s")

    def test_an_idle_keep_alive_connection_is_closed_after_the_read_timeout(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, body = read_response(sock.makefile("rb"))
            self.assertEqual((status, body), (200, {"status": "ok"}))
            elapsed = self.closed_after(sock)
        self.assertGreaterEqual(elapsed, self.TIMEOUT_S - 0.05)
        self.assertLess(elapsed, self.TIMEOUT_S + 0.5)

    def test_a_request_trickling_a_byte_at_a_time_is_cut_off_at_the_deadline(self):
        # Every byte comes well within the timeout, yet the request as a whole must not outlive it.
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            elapsed = self.closed_after(sock, send_every=0.05, chunk=b"X")
        self.assertGreaterEqual(elapsed, self.TIMEOUT_S - 0.05)
        self.assertLess(elapsed, self.TIMEOUT_S + 0.5)

    def test_a_busy_connection_keeps_being_served_past_the_timeout(self):
        # The deadline is per request: a client that keeps sending requests keeps its connection.
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=5)
        conn.connect()
        local = conn.sock.getsockname()
        started = time.monotonic()
        while time.monotonic() - started < 3 * self.TIMEOUT_S:
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 200)
            self.assertEqual(conn.sock.getsockname(), local, "the connection was replaced")
            time.sleep(0.1)
        conn.close()


class ServeLifecycle(unittest.TestCase):
    def test_a_shard_down_at_start_costs_only_its_keys_and_is_used_once_it_is_up(self):
        ports = harness.shard_ports()
        late_port = harness.free_port()
        ids = {name: [] for name in harness.TUTORIAL_NAMES}
        i = 0
        while min(len(v) for v in ids.values()) < 3:
            url = f"https://example.com/late/{uuid.uuid4()}/{i}"
            ids[RING.get_node(expected_id(url))].append(url)
            i += 1
        cluster = tempfile.mkdtemp(prefix="shardurl-late-")
        os.chmod(cluster, 0o755)
        server = harness.Server(BINARY, ports=[ports[0], ports[1], late_port])
        try:
            for name in ("5432", "5433"):
                for url in ids[name]:
                    self.assertEqual(server.request("POST", "/urls?full_url=" + url)[0], 200)
            started = time.monotonic()
            status, body = server.request("POST", "/urls?full_url=" + ids["5434"][0])
            self.assertEqual(status, 503)
            self.assertEqual(body, {"detail": "shard 5434 unavailable"})
            self.assertLess(time.monotonic() - started, 3)
            self.assertIn("shard 5434: down", server.output())
            # Every 5xx is in the log with its shard and cause.
            self.assertRegex(server.output(), r"answered 503 \(shard 5434 unavailable\): shard 5434: down")

            subprocess.run([os.path.join(harness.REPO, "scripts", "cluster"), "start", "--dir", cluster,
                            "--ports", str(late_port)], check=True, capture_output=True, timeout=120)
            deadline = time.monotonic() + 10
            while server.request("POST", "/urls?full_url=" + ids["5434"][0])[0] != 200:
                self.assertLess(time.monotonic(), deadline, "the late shard was never used")
                time.sleep(0.1)
            for url in ids["5434"]:
                status, body = server.request("POST", "/urls?full_url=" + url)
                self.assertEqual((status, body["server"]["nodename"]), (200, "5434"))
        finally:
            self.assertEqual(server.stop(), 0)
            subprocess.run([os.path.join(harness.REPO, "scripts", "cluster"), "stop", "--dir", cluster],
                           capture_output=True, timeout=120)
            shutil.rmtree(cluster, ignore_errors=True)

    def test_a_config_that_cannot_serve_exits_2_naming_the_field(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump({"shards": [{"name": "a", "conninfo": "host=127.0.0.1"}, {"name": "b"}]}, f)
            f.flush()
            out = subprocess.run([BINARY, "serve", "--config", f.name], capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 2)
        self.assertIn("shards[1].conninfo", out.stderr.decode())

    def test_a_taken_listen_port_is_reported(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
                json.dump({"listen": f"127.0.0.1:{port}",
                           "shards": [{"name": "a", "conninfo": "host=127.0.0.1"}]}, f)
                f.flush()
                out = subprocess.run([BINARY, "serve", "--config", f.name], capture_output=True,
                                     timeout=10)
        self.assertEqual(out.returncode, 1)
        self.assertIn(f"cannot listen on 127.0.0.1:{port}", out.stderr.decode())


class TutorialShardsUpgraded(unittest.TestCase):
    """Shards created and filled the tutorial's way, upgraded by initdb/, then served."""

    DB = "tutorial_e2e"

    def test_every_tutorial_row_is_served_with_its_server(self):
        ports = harness.shard_ports()
        urls = ["https://www.postgresql.org/", "https://www.google.com/", "https://www.dev.to/"]
        urls += [f"https://example.com/tutorial/{i}" for i in range(60)]
        rows = {}
        for url in urls:
            # The tutorial's id: standard base64 (so '+' and '/'), 5 characters, placed by uhashring.
            url_id = base64.b64encode(hashlib.sha256(url.encode()).digest()).decode()[:5]
            rows[url_id] = url
        # A few hand-made ids with the characters that need care in a path.
        rows.update({"ab/cd": "https://example.com/slash", "x+y=z": "https://example.com/plus",
                     "a b": "https://example.com/space"})
        self.assertTrue(any("/" in k for k in rows) and any("+" in k for k in rows))
        for port in ports:
            harness.psql(port, f"DROP DATABASE IF EXISTS {self.DB}")
            harness.psql(port, f"CREATE DATABASE {self.DB}")
            harness.psql(port, "CREATE TABLE URL_TABLE (id serial NOT NULL PRIMARY KEY, URL text, "
                               "URL_ID varchar(5))", db=self.DB)
        for url_id, url in rows.items():
            port = shard_port(url_id)
            for _ in range(2):  # the tutorial inserted again when the same URL was posted again
                harness.psql(port, "INSERT INTO url_table (URL, URL_ID) VALUES "
                                   f"('{url}', '{url_id}')", db=self.DB)
        for port in ports:
            harness.apply_initdb(port, self.DB)
            harness.apply_initdb(port, self.DB)  # idempotent
        try:
            with harness.Server(BINARY, db=self.DB) as server:
                for url_id, url in rows.items():
                    status, body = server.request("GET", "/urls/" + quoted(url_id))
                    self.assertEqual(status, 200, f"{url_id!r}: {body}")
                    self.assertEqual(body, {"url_id": url_id, "url": url, "server": RING.get(url_id)})
                for port in ports:
                    dupes = harness.psql(port, "SELECT count(*) - count(DISTINCT url_id) FROM url_table",
                                         db=self.DB)
                    self.assertEqual(dupes, "0")
                # New links land next to the old ones.
                status, body = server.request("POST", "/urls?full_url=https://example.com/after-upgrade")
                self.assertEqual(status, 200, body)
                self.assertEqual(server.request("GET", "/urls/" + body["url_id"])[0], 200)
        finally:
            for port in ports:
                harness.psql(port, f"DROP DATABASE IF EXISTS {self.DB}")


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
