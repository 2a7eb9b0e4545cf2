"""Runs the real shardurl binary against the suite's real PostgreSQL shards.

scripts/test starts the shards and exports SHARDURL_TEST_PORTS (e.g. "25432,25433,25434") and
SHARDURL_TEST_CLUSTER_DIR. The shards are named "5432", "5433", "5434" in the ring, like the
tutorial's, whatever ports they really listen on.
"""
import fcntl
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TUTORIAL_NAMES = ["5432", "5433", "5434"]


# SHARDURL_TEST_TLS=1: every Server this process starts serves HTTPS with a certificate made for
# the run, and connect() and Server.request() speak TLS to it (ctest runs the hostile battery
# both ways).
TLS = os.environ.get("SHARDURL_TEST_TLS") == "1"
_tls_files = {}


def tls_files(directory=None):
    """A CA and a server certificate it signed, for localhost and 127.0.0.1, made with the
    openssl command once per process: {"ca": PATH, "cert": PATH, "key": PATH}."""
    if not _tls_files:
        d = directory or tempfile.mkdtemp(prefix="shardurl-tls-")
        run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True,
                                           cwd=d, timeout=60)
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=shardurl test CA")
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
        with open(os.path.join(d, "san.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
        _tls_files.update(ca=os.path.join(d, "ca.pem"), cert=os.path.join(d, "server.pem"),
                          key=os.path.join(d, "server.key"), dir=d)
    return _tls_files


def client_tls_context(alpn=("http/1.1",)):
    """What a careful client uses: the test CA, host name checks, ALPN."""
    context = ssl.create_default_context(cafile=tls_files()["ca"])
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def connect(port, timeout, tls=None):
    """A connected socket to 127.0.0.1:port; over TLS (verified) when `tls`, or by default when
    SHARDURL_TEST_TLS=1."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if TLS if tls is None else tls:
        try:
            sock = client_tls_context().wrap_socket(sock, server_hostname="127.0.0.1")
        except BaseException:
            sock.close()
            raise
    return sock


def shard_ports():
    ports = os.environ.get("SHARDURL_TEST_PORTS")
    if not ports:
        raise SystemExit("SHARDURL_TEST_PORTS is not set: run this through scripts/test, which "
                         "starts the PostgreSQL shards")
    return [int(p) for p in ports.split(",")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(port, sql, db="postgres"):
    """Runs SQL on one shard and returns its unaligned output."""
    out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                          "-p", str(port), "-U", "postgres", "-d", db, "-c", sql],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"psql on {port}: {out.stderr}")
    return out.stdout.strip()


def apply_initdb(port, db):
    for name in sorted(os.listdir(os.path.join(REPO, "initdb"))):
        if name.endswith(".sql"):
            subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                            str(port), "-U", "postgres", "-d", db, "-f",
                            os.path.join(REPO, "initdb", name)],
                           check=True, capture_output=True, timeout=60)


class Server:
    """shardurl serve on a free port; a context manager that stops it with SIGTERM."""

    def __init__(self, binary, db="postgres", names=TUTORIAL_NAMES, extra=None, ports=None,
                 shard_extra=None, env=None, tls=None, shards=None, port=None):
        """shard_extra: {name: {field: value}} merged into that shard's config object. tls: serve
        HTTPS with tls_files() (default: SHARDURL_TEST_TLS). shards: the config's whole "shards"
        list instead of one per port of the suite's shards. port: where to listen instead of a
        free port the kernel picks."""
        self.port = port or free_port()
        self.tls = TLS if tls is None else tls
        if shards is None:
            shards = [{"name": name,
                       "conninfo": f"host=127.0.0.1 port={port} user=postgres dbname={db}"}
                      for name, port in zip(names, ports or shard_ports())]
        for shard in shards:
            shard.update((shard_extra or {}).get(shard["name"], {}))
        config = {"listen": f"127.0.0.1:{self.port}", "shards": shards}
        if self.tls:
            config["tls"] = {"cert_file": tls_files()["cert"], "key_file": tls_files()["key"]}
        config.update(extra or {})
        self.config = config
        self.config_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(config, self.config_file)
        self.config_file.close()
        # O_APPEND: output() seeks the shared file description, the server must still write at
        # the end (without it, a read while the server logs would make it overwrite old lines).
        # Set with fcntl: TemporaryFile's mode "a" only seeks, it does not set the flag.
        self.log = tempfile.TemporaryFile()
        flags = fcntl.fcntl(self.log.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(self.log.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
        self.proc = subprocess.Popen([binary, "serve", "--config", self.config_file.name],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env=None if env is None else {**os.environ, **env})
        deadline = time.monotonic() + 10
        while True:
            try:
                status, _ = self.request("GET", "/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"shardurl did not start:\n{self.output()}")
            time.sleep(0.05)

    def reload(self, config=None, text=None, timeout=10):
        """Rewrites the config file (`config` as JSON, or `text` as is), sends SIGHUP and waits
        for the server's "SIGHUP:" log line about it, which it returns."""
        with open(self.config_file.name, "w") as f:
            f.write(text if text is not None else json.dumps(config))
        if config is not None:
            self.config = config
        before = self.output().count("SIGHUP:")
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [line for line in self.output().splitlines() if "SIGHUP:" in line]
            if len(lines) > before:
                return lines[before]
            time.sleep(0.02)
        raise RuntimeError(f"no SIGHUP line within {timeout} s:\n{self.output()[-3000:]}")

    def wait_ready(self, timeout=20):
        """Waits until /readyz says every shard is up (probed once at least): the first requests
        then find their shards known, whatever the machine's speed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                status, body = self.request("GET", "/readyz")
                if status == 200 and all(s.get("state") == "up" for s in body["shards"].values()):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"shardurl's shards were not all up within {timeout} s:\n{self.output()}")

    def connection(self, timeout=10):
        """An http.client connection to the server, HTTPS when it serves HTTPS."""
        if self.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=client_tls_context())
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        conn = self.connection()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, (json.loads(data) if data else None)
        finally:
            conn.close()

    def output(self):
        if self.log.closed:
            return "(log closed)"
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.config_file.name)
        self.log.close()
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
