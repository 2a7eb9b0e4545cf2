#!/usr/bin/python3
"""HTTPS: the listener with "tls" in its config, against real clients (Python's ssl, curl).

What TLS itself adds: protocol versions, ALPN, a plain-HTTP request or garbage on the TLS port, a
handshake that never finishes, the lingering close after close_notify, bad certificate files at
start. Everything HTTP promises is checked over TLS by the hostile battery run with
SHARDURL_TEST_TLS=1 (ctest's e2e_hostile_tls).

Usage (ctest runs it as e2e_https): /usr/bin/python3 test/e2e/https_test.py BINARY
Needs SHARDURL_TEST_PORTS (the shards scripts/test or scripts/cluster started) and openssl.
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid

import harness

BINARY = None
RUN = uuid.uuid4().hex[:10]
READ_TIMEOUT_MS = 1000  # the server's read deadline here: slow cases finish fast


def read_all(sock, limit=5.0):
    """Everything until EOF (or `limit` seconds): (bytes, how it ended)."""
    sock.settimeout(limit)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, "eof"
            data += chunk
    except socket.timeout:
        return data, "timeout"
    except ConnectionResetError:
        return data, "reset"


def tls_context(minimum=None, maximum=None, alpn=("http/1.1",)):
    context = harness.client_tls_context(alpn=alpn)
    if minimum:
        context.minimum_version = minimum
    if maximum:
        context.maximum_version = maximum
    return context


class Https(unittest.TestCase):
    server = None

    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server(BINARY, tls=True,
                                    extra={"http": {"read_timeout_ms": READ_TIMEOUT_MS}})
        cls.server.wait_ready()

    @classmethod
    def tearDownClass(cls):
        output = cls.server.output()
        code = cls.server.stop()
        assert code == 0, f"shardurl exited {code}:\n{output[-4000:]}"

    def tearDown(self):
        # Whatever a case did, the server lives on and answers over TLS.
        self.assertIsNone(self.server.proc.poll(), self.server.output()[-3000:])
        status, body = self.server.request("GET", "/healthz")
        self.assertEqual((status, body), (200, {"status": "ok"}))

    def handshake(self, context):
        raw = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        return context.wrap_socket(raw, server_hostname="localhost")

    def test_the_tutorials_calls_over_https_with_curl(self):
        base = f"https://localhost:{self.server.port}"
        ca = harness.tls_files()["ca"]
        url = f"https://example.com/https/{RUN}"
        created = subprocess.run(
            ["curl", "-sS", "--cacert", ca, "-X", "POST",
             f"{base}/urls?full_url={urllib.parse.quote(url, safe='')}", "-w", "\n%{http_code}"],
            capture_output=True, text=True, timeout=20)
        body, _, code = created.stdout.rpartition("\n")
        self.assertEqual(code, "200", created.stdout + created.stderr)
        url_id = json.loads(body)["url_id"]
        got = subprocess.run(["curl", "-sS", "--cacert", ca, f"{base}/urls/{url_id}"],
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(json.loads(got.stdout)["url"], url)
        redirect = subprocess.run(
            ["curl", "-sS", "--cacert", ca, "-o", "/dev/null", "-w",
             "%{http_code} %{redirect_url} %{http_version} %{ssl_verify_result}", f"{base}/{url_id}"],
            capture_output=True, text=True, timeout=20)
        self.assertEqual(redirect.stdout, f"302 {url} 1.1 0", redirect.stderr)

    def test_tls_12_and_13_are_served_and_older_versions_refused(self):
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            with self.subTest(version=version.name):
                with self.handshake(tls_context(minimum=version, maximum=version)) as sock:
                    self.assertEqual(sock.version(), version.name.replace("v1_", "v1."))
        # OpenSSL's own floor may refuse TLS 1.1 on the client side already: then curl's answer
        # tells nothing; openssl s_client with the legacy level is the real check.
        out = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{self.server.port}", "-tls1_1",
             "-cipher", "DEFAULT@SECLEVEL=0"], input="", capture_output=True, text=True, timeout=20)
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertRegex(out.stdout + out.stderr, r"alert protocol version|no protocols available|"
                                                  r"unsupported protocol|wrong version")

    def test_alpn_picks_http11_and_a_client_that_offers_only_h2_is_refused(self):
        with self.handshake(tls_context(alpn=("h2", "http/1.1"))) as sock:
            self.assertEqual(sock.selected_alpn_protocol(), "http/1.1")
        with self.handshake(tls_context(alpn=None)) as sock:  # no ALPN at all: HTTP/1.1 still
            self.assertIsNone(sock.selected_alpn_protocol())
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data, _ = read_all(sock)
            self.assertTrue(data.startswith(b"HTTP/1.1 200 "), data)
        with self.assertRaisesRegex(ssl.SSLError, "NO_APPLICATION_PROTOCOL|no application protocol"):
            self.handshake(tls_context(alpn=("h2",))).close()

    def test_a_wrong_host_name_fails_verification_on_the_client(self):
        raw = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
        with self.assertRaises(ssl.SSLCertVerificationError):
            tls_context().wrap_socket(raw, server_hostname="shardurl.example.org")

    def test_plain_http_on_the_https_port_gets_a_plain_400_saying_why(self):
        for request in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                        b"POST /urls?full_url=https://example.com HTTP/1.1\r\nHost: x\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as sock:
                sock.sendall(request)
                data, end = read_all(sock)
            head, _, body = data.partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data)
            self.assertIn(b"\r\nConnection: close", head)
            self.assertIn(b"\r\nContent-Type: application/json", head)
            self.assertIn("https://", json.loads(body)["detail"])
            self.assertEqual(end, "eof", "the connection must be closed cleanly, not reset")
        # The same with curl, as an operator who forgot the scheme sees it.
        out = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{self.server.port}/healthz",
                              "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=20)
        self.assertTrue(out.stdout.endswith("\n400"), out.stdout + out.stderr)

    def test_garbage_and_unfinished_handshakes_are_closed_without_an_answer(self):
        hello = harness_client_hello()
        cases = {
            "binary garbage": bytes(range(256)) * 4,
            "lower-case text": b"hello there\r\n\r\n",
            "half a client hello, then silence": hello[:len(hello) // 2],
            "a client hello then garbage records": hello + b"\x17\x03\x03\x00\x05abcde" * 3,
            "a handshake record header alone": b"\x16\x03\x01",
            "nothing at all": b"",
        }
        for name, payload in cases.items():
            with self.subTest(case=name):
                started = time.monotonic()
                with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as sock:
                    if payload:
                        sock.sendall(payload)
                    data, end = read_all(sock, limit=READ_TIMEOUT_MS / 1000 * 4)
                elapsed = time.monotonic() - started
                self.assertIn(end, ("eof", "reset"), f"{name}: still open after {elapsed:.1f} s")
                self.assertFalse(data.startswith(b"HTTP/"), f"{name}: answered {data[:100]!r}")
                # Closed at once, or at the read deadline (plus the sweeper's slack) at the latest.
                self.assertLess(elapsed, READ_TIMEOUT_MS / 1000 + 1.0, name)

    def test_a_silent_session_after_the_handshake_is_closed_at_the_read_deadline(self):
        started = time.monotonic()
        with self.handshake(tls_context()) as sock:
            data, end = read_all(sock, limit=5)
        elapsed = time.monotonic() - started
        self.assertEqual((data, end), (b"", "eof"))
        self.assertGreater(elapsed, READ_TIMEOUT_MS / 1000 * 0.9)
        self.assertLess(elapsed, READ_TIMEOUT_MS / 1000 + 1.0)

    def test_keep_alive_and_pipelining_in_one_session(self):
        requests = b"".join(
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n" for _ in range(20))
        with self.handshake(tls_context()) as sock:
            sock.sendall(requests + b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"
                                    b"Connection: close\r\n\r\n")
            data, end = read_all(sock)
        self.assertEqual(data.count(b"HTTP/1.1 200 OK\r\n"), 21, data[-300:])
        self.assertEqual(end, "eof")

    def test_lingering_close_delivers_the_answer_when_the_client_keeps_sending(self):
        # The server answers an oversized header block and closes; the client is still sending.
        # Without the lingering close the unread bytes would make the kernel send a reset, and the
        # client could lose the 431 it was about to read.
        with self.handshake(tls_context()) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 9000)
            try:
                for _ in range(20):
                    sock.sendall(b"a" * 4096)
            except OSError:
                pass  # the server may have closed its side already
            data, _ = read_all(sock)
        self.assertTrue(data.startswith(b"HTTP/1.1 431 "), data[:200])
        self.assertIn(b'"detail"', data)

    def test_many_failed_handshakes_leave_the_server_serving(self):
        for i in range(50):
            raw = socket.create_connection(("127.0.0.1", self.server.port), timeout=5)
            bad = ssl.create_default_context()  # the system's CAs: our certificate is unknown
            with self.assertRaises(ssl.SSLError):
                bad.wrap_socket(raw, server_hostname="localhost")
            raw.close()
        status, _ = self.server.request("GET", "/healthz")
        self.assertEqual(status, 200)


class Startup(unittest.TestCase):
    """Files that cannot be used stop the start with a message naming the field and the reason."""

    def start(self, tls):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"listen": f"127.0.0.1:{harness.free_port()}", "tls": tls,
                       "shards": [{"name": "5432", "conninfo": "host=127.0.0.1 port=1"}]}, f)
        try:
            return subprocess.run([BINARY, "serve", "--config", f.name], capture_output=True,
                                  text=True, timeout=20)
        finally:
            os.unlink(f.name)

    def test_unusable_certificate_files_are_refused_at_start(self):
        files = harness.tls_files()
        other_key = os.path.join(files["dir"], "ca.key")  # a key, but not the certificate's
        cases = {
            "missing certificate": ({"cert_file": "/nonexistent.pem", "key_file": files["key"]},
                                    "tls.cert_file"),
            "certificate not PEM": ({"cert_file": BINARY, "key_file": files["key"]},
                                    "tls.cert_file"),
            "missing key": ({"cert_file": files["cert"], "key_file": "/nonexistent.key"},
                            "tls.key_file"),
            "key of another certificate": ({"cert_file": files["cert"], "key_file": other_key},
                                           "tls.key_file"),
            "key file missing from the config": ({"cert_file": files["cert"]}, "tls.key_file"),
            "an unknown field": ({"cert_file": files["cert"], "key_file": files["key"],
                                  "ciphers": "x"}, "tls.ciphers"),
        }
        for name, (tls, field) in cases.items():
            with self.subTest(case=name):
                out = self.start(tls)
                self.assertNotEqual(out.returncode, 0, out.stderr)
                # One line says it all: which field, which file, why.
                lines = [line for line in out.stderr.splitlines() if "tls." in line]
                self.assertEqual(len(lines), 1, out.stderr)
                self.assertIn(field, lines[0])
                print(f"\n  {name}: {lines[0]}", file=sys.stderr)


def harness_client_hello():
    """The bytes of a real ClientHello, from Python's ssl on memory BIOs."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = tls_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
