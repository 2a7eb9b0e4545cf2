#!/usr/bin/python3
"""SIGHUP re-reads the config file: what may change takes effect for the next request without
dropping a connection; a file that cannot be used, or that changes what only a restart can,
changes nothing and says why in one log line.

Usage (ctest runs it as e2e_reload): /usr/bin/python3 test/e2e/reload_test.py BINARY
Needs SHARDURL_TEST_PORTS (the shards scripts/test or scripts/cluster started) and openssl.
"""
import copy
import hashlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse
import uuid

import harness

BINARY = None
RUN = uuid.uuid4().hex[:10]
KEY_A = "reload-key-a-" + RUN
KEY_B = "reload-key-b-" + RUN


def keep_alive_get(conn, path, headers=None):
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    return resp.status, resp.getheaders(), resp.read()


class Reload(unittest.TestCase):
    def setUp(self):
        self.server = harness.Server(BINARY, extra={"api_keys": [KEY_A]})
        self.server.wait_ready()

    def tearDown(self):
        output = self.server.output()
        code = self.server.stop()
        self.assertEqual(code, 0, output[-3000:])

    def changed(self, **fields):
        config = copy.deepcopy(self.server.config)
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key].update(value)
            else:
                config[key] = value
        return config

    def create(self, url):
        status, body = self.server.request("POST", "/urls?full_url=" + urllib.parse.quote(url, safe=""))
        self.assertIn(status, (200, 201), body)
        return body["url_id"]

    def test_settings_change_for_the_next_request_on_a_connection_opened_before(self):
        url_id = self.create(f"https://example.com/reload/{RUN}/settings")
        conn = self.server.connection()
        status, headers, _ = keep_alive_get(conn, "/" + url_id)
        self.assertEqual(status, 302)
        long_url = "https://example.com/" + "x" * 200
        line = self.server.reload(self.changed(redirect_status=307, max_url_length=100,
                                               api_keys=[KEY_B]))
        self.assertIn("reloaded", line)
        for name in ("api_keys", "redirect_status", "max_url_length"):
            self.assertIn(name, line)
        # The same connection, which was open across the reload.
        status, headers, _ = keep_alive_get(conn, "/" + url_id)
        self.assertEqual(status, 307)
        conn.request("POST", "/urls?full_url=" + urllib.parse.quote(long_url, safe=""))
        resp = conn.getresponse()
        resp.read()
        self.assertEqual(resp.status, 422)
        # The new key deletes; the old one is refused.
        conn.request("DELETE", "/urls/" + url_id, headers={"X-Api-Key": KEY_A})
        resp = conn.getresponse()
        resp.read()
        self.assertEqual(resp.status, 403)
        conn.request("DELETE", "/urls/" + url_id, headers={"X-Api-Key": KEY_B})
        resp = conn.getresponse()
        resp.read()
        self.assertEqual(resp.status, 204)
        conn.close()

    def test_the_http_read_deadline_changes_for_new_requests(self):
        self.server.reload(self.changed(http={"read_timeout_ms": 500}))
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # and never the rest
            while sock.recv(4096):
                pass
        self.assertLess(time.monotonic() - started, 2.0)

    def test_cache_settings_apply_at_once(self):
        # With the cache turned off, every redirect reads the shard: a row changed behind the
        # service's back (no notification: the trigger is bypassed with session_replication_role)
        # shows at once. With a cache, it would be served from memory until notified or expired.
        url_id = self.create(f"https://example.com/reload/{RUN}/cache")
        port = harness.shard_ports()[harness.TUTORIAL_NAMES.index(
            __import__("uhashring").HashRing(nodes=harness.TUTORIAL_NAMES).get_node(url_id))]
        for _ in range(3):
            self.server.request("GET", "/urls/" + url_id)  # cached now
        changed_url = f"https://example.com/reload/{RUN}/cache-changed"
        harness.psql(port, "SET session_replication_role = replica; "
                     f"UPDATE url_table SET url = '{changed_url}' WHERE url_id = '{url_id}'")
        _, body = self.server.request("GET", "/urls/" + url_id)
        self.assertNotEqual(body["url"], changed_url, "the cache was not in use to begin with")
        line = self.server.reload(self.changed(cache={"entries": 0}))
        self.assertIn("cache", line)
        _, body = self.server.request("GET", "/urls/" + url_id)
        self.assertEqual(body["url"], changed_url)

    def test_log_format_and_the_access_log_change_at_once(self):
        self.server.request("GET", "/healthz?before")
        line = self.server.reload(self.changed(log={"format": "json", "access": True}))
        self.assertIn("log", line)
        self.server.request("GET", "/healthz?after-json")
        deadline = time.monotonic() + 5
        while '"path":"/healthz?after-json"' not in self.server.output().replace(" ", "") and \
                time.monotonic() < deadline:
            time.sleep(0.05)  # access lines are flushed every 100 ms
        lines = self.server.output().splitlines()
        access = [json.loads(l) for l in lines if l.startswith("{") and "after-json" in l]
        self.assertEqual(len(access), 1, lines[-10:])
        self.assertEqual(access[0]["status"], 200)
        self.assertFalse(any("?before" in l for l in lines), "no access log before the reload")
        line = self.server.reload(self.changed(log={"format": "text", "access": False}))
        self.assertFalse(line.startswith("{"), line)  # the reload's own line is text again
        self.server.request("GET", "/healthz?after-text")
        time.sleep(0.3)
        self.assertNotIn("after-text", self.server.output())

    def test_a_file_that_cannot_be_used_changes_nothing_and_says_why(self):
        url_id = self.create(f"https://example.com/reload/{RUN}/bad")
        cases = {
            "not JSON": ("{\"listen\": ", None, "not valid JSON"),
            "an unknown field": (None, self.changed(redirect_status=307, colour="blue"), "colour"),
            "a value out of range": (None, self.changed(redirect_status=303), "redirect_status"),
            "a short API key": (None, self.changed(api_keys=["short"], redirect_status=307),
                                "api_keys[0]"),
            "a new listen address": (None, self.changed(listen="127.0.0.1:1", redirect_status=307),
                                     "restart"),
            "a shard added": (None, self.changed(redirect_status=307, shards=self.server.config["shards"] + [
                {"name": "5435", "conninfo": "host=127.0.0.1 port=1"}]), "shardurl reshard"),
            "a shard's weight": (None, self.changed(redirect_status=307, shards=[
                dict(s, weight=2) if i == 0 else s
                for i, s in enumerate(self.server.config["shards"])]), "shardurl reshard"),
            "a shard's conninfo": (None, self.changed(redirect_status=307, shards=[
                dict(s, conninfo=s["conninfo"] + " connect_timeout=3") if i == 0 else s
                for i, s in enumerate(self.server.config["shards"])]), "restart"),
            "workers": (None, self.changed(workers=7, redirect_status=307), "workers"),
            "HTTPS turned on": (None, self.changed(redirect_status=307, tls={
                "cert_file": harness.tls_files()["cert"], "key_file": harness.tls_files()["key"]}),
                "restart"),
            "a missing file": (None, None, "cannot open"),
        }
        good = copy.deepcopy(self.server.config)
        for name, (text, config, reason) in cases.items():
            with self.subTest(case=name):
                if name == "a missing file":
                    os.rename(self.server.config_file.name, self.server.config_file.name + ".away")
                    before = self.server.output().count("SIGHUP:")
                    self.server.proc.send_signal(__import__("signal").SIGHUP)
                    deadline = time.monotonic() + 10
                    while self.server.output().count("SIGHUP:") == before and time.monotonic() < deadline:
                        time.sleep(0.02)
                    line = [l for l in self.server.output().splitlines() if "SIGHUP:" in l][before]
                    os.rename(self.server.config_file.name + ".away", self.server.config_file.name)
                else:
                    line = self.server.reload(config=config, text=text)
                    self.server.config = good
                self.assertIn("nothing changed", line)
                self.assertIn(reason, line)
                status, _ = self.server.request("GET", "/urls/" + url_id)
                self.assertEqual(status, 200)
                conn = self.server.connection()
                self.assertEqual(keep_alive_get(conn, "/" + url_id)[0], 302, name)
                conn.close()
        # One line per refused reload, and the process still serves with the first settings.
        refused = [l for l in self.server.output().splitlines() if "not reloaded" in l]
        self.assertEqual(len(refused), len(cases), "\n".join(refused))

    def test_reloads_under_load_drop_no_connection_and_fail_no_request(self):
        url_id = self.create(f"https://example.com/reload/{RUN}/load")
        stop = threading.Event()
        errors, counts = [], [0] * 4

        def client(i):
            conn = self.server.connection()
            try:
                while not stop.is_set():
                    status, _, _ = keep_alive_get(conn, "/urls/" + url_id)
                    if status != 200:
                        errors.append(status)
                    counts[i] += 1
            except Exception as e:  # a dropped connection is exactly what must not happen
                errors.append(repr(e))
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            for i in range(10):
                cache = {"entries": 1000 * (i % 3), "ttl_s": 1 + i}
                line = self.server.reload(self.changed(
                    cache=cache, timeouts={"request_ms": 1500 + i}, api_keys=[KEY_A, KEY_B]))
                self.assertIn("reloaded", line)
                time.sleep(0.1)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        self.assertEqual(errors, [])
        self.assertTrue(all(c > 10 for c in counts), counts)


class ReloadTls(unittest.TestCase):
    """A renewed certificate: new connections get it, open ones keep going."""

    def cert_of(self, port):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()

    def test_new_connections_get_the_renewed_certificate(self):
        files = harness.tls_files()
        directory = files["dir"]
        cert = os.path.join(directory, "live.pem")
        key = os.path.join(directory, "live.key")
        for src, dst in ((files["cert"], cert), (files["key"], key)):
            with open(src, "rb") as a, open(dst, "wb") as b:
                b.write(a.read())
        server = harness.Server(BINARY, tls=True,
                                extra={"tls": {"cert_file": cert, "key_file": key}})
        try:
            first = self.cert_of(server.port)
            conn = server.connection()
            self.assertEqual(keep_alive_get(conn, "/healthz")[0], 200)
            # Renew: the same key, a new certificate (new serial) from the same CA.
            subprocess.run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
                            "-CAkey", "ca.key", "-CAcreateserial", "-out", "live.pem", "-days", "3",
                            "-extfile", "san.ext"], cwd=directory, check=True, capture_output=True)
            line = server.reload(server.config)
            self.assertIn("certificate and key re-read", line)
            self.assertNotEqual(self.cert_of(server.port), first)
            self.assertEqual(keep_alive_get(conn, "/healthz")[0], 200)  # the old session lives on
            conn.close()
            status, _ = server.request("GET", "/healthz")  # verified against the CA
            self.assertEqual(status, 200)
            # A broken certificate file: refused, and the renewed certificate stays in use.
            renewed = self.cert_of(server.port)
            with open(cert, "w") as f:
                f.write("not a certificate\n")
            line = server.reload(server.config)
            self.assertIn("nothing changed", line)
            self.assertIn("tls.cert_file", line)
            self.assertEqual(self.cert_of(server.port), renewed)
        finally:
            output = server.output()
            self.assertEqual(server.stop(), 0, output[-3000:])


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
