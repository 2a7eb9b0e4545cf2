#!/usr/bin/python3
"""PostgreSQL 15 servers that speak TLS only, with certificates made here, for tests.

    certs = Certs(directory)                          # a CA, server and client certificates
    with TlsPostgres(certs, "localhost") as pg:       # a server whose certificate names localhost
        pg.conninfo(sslmode="verify-full")            # host=localhost port=P ... sslrootcert=CA
    with TlsRelay(certs, upstream_port=pg.port):      # see the class: 16 KiB TLS records
        ...

Everything is made by the test itself with the openssl command-line tool: a CA (CN "shardurl
test CA"), a server certificate per host name (subjectAltName DNS:NAME), a client certificate for
the role `certuser`, and a second CA that signed nothing the servers present. The servers' pg_hba
has `hostssl` lines only for TCP (and `local` for the test's own setup over the Unix socket in the
server's directory), so a session without TLS is refused: whatever succeeds over TCP used TLS.
The role `certuser` must log in with a client certificate (`cert` authentication).

Run as root, the servers run as the `postgres` user (initdb and postgres refuse root); otherwise as
the caller. Each server is a child process of this one (no pg_ctl daemon), stopped with SIGINT
(PostgreSQL's fast shutdown). Ports: SHARDURL_TEST_PORT_RANGE ("26432-26439") limits the choice to
a range, for machines where other people's servers own the rest; otherwise the kernel picks.

As a command, it starts what test/integration/pgasync_tls_pgtest.cpp needs, runs that binary with
the environment described there, and stops everything, whatever the binary did:

    /usr/bin/python3 test/integration/tls_shards.py run [--timeout S] -- BINARY [ARGS...]
"""
import argparse
import asyncio
import atexit
import os
import pwd
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
SERVER_USER = "postgres"
CERT_USER = "certuser"          # the role that logs in with a client certificate only
WRONG_NAME = "wrong.shardurl.invalid"  # a name no test connects to (.invalid never resolves)
TLS_RECORD = 16384              # the largest TLS plaintext record (RFC 8446 5.1)


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on, from SHARDURL_TEST_PORT_RANGE when it is set."""
    wanted = os.environ.get("SHARDURL_TEST_PORT_RANGE")
    candidates = [0]
    if wanted:
        low, high = (int(p) for p in wanted.split("-"))
        candidates = [p for p in range(low, high + 1) if p not in _taken]
    for port in candidates:
        with socket.socket() as s:
            # As servers bind (PostgreSQL, shardurl): a port whose last server's connections
            # linger in TIME_WAIT is free; one somebody listens on is not.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                s.listen()
            except OSError:
                continue
            port = s.getsockname()[1]
            _taken.add(port)  # handed out: not again before release_port, even while unbound
            return port
    raise RuntimeError(f"no free port in SHARDURL_TEST_PORT_RANGE={wanted}")


def release_port(port):
    """Lets free_port hand out `port` again (its server has stopped)."""
    _taken.discard(port)


_taken = set()
# Servers and relays not stopped yet: stopped at exit whatever ends the process (a failed setUp,
# an exception, Ctrl-C, or SIGTERM, which this module turns into an orderly exit).
_running = []


@atexit.register
def _stop_all():
    for thing in list(reversed(_running)):
        thing.stop()


def _exit_on_sigterm(*_):
    raise SystemExit(143)


signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _as_server_user():
    """subprocess arguments that run a command as the postgres user when we are root."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam(SERVER_USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [],
            "env": {**os.environ, "HOME": pw.pw_dir, "USER": SERVER_USER}}


def _give_to_server_user(*paths):
    if os.geteuid() != 0:
        return
    pw = pwd.getpwnam(SERVER_USER)
    for path in paths:
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _openssl(*args, cwd):
    out = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {out.stderr}")


class Certs:
    """A CA and the certificates it signs, in one directory readable by the server user."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o755)
        self.ca = self._ca("ca", "shardurl test CA")
        # A CA that signed nothing the servers show: a client that trusts only it must refuse them.
        self.other_ca = self._ca("other-ca", "shardurl unrelated CA")
        self._servers = {}
        self.client_cert, self.client_key = self._leaf(CERT_USER, f"/CN={CERT_USER}",
                                                       "extendedKeyUsage=clientAuth")

    def _ca(self, stem, cn):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", f"{stem}.key", "-out", f"{stem}.crt", "-days", "3",
                 "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        os.chmod(os.path.join(self.dir, f"{stem}.crt"), 0o644)
        return os.path.join(self.dir, f"{stem}.crt")

    def _leaf(self, stem, subject, *extensions):
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", subject,
                 cwd=self.dir)
        with open(os.path.join(self.dir, f"{stem}.ext"), "w") as f:
            f.write("\n".join(extensions) + "\n")
        _openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "3", "-out", f"{stem}.crt", "-extfile", f"{stem}.ext",
                 cwd=self.dir)
        key = os.path.join(self.dir, f"{stem}.key")
        os.chmod(key, 0o600)  # libpq and PostgreSQL refuse a key others may read
        os.chmod(os.path.join(self.dir, f"{stem}.crt"), 0o644)
        return os.path.join(self.dir, f"{stem}.crt"), key

    def server(self, name):
        """(certificate, key) for a server called `name` (CN and subjectAltName DNS:name); the key
        belongs to the server user."""
        if name not in self._servers:
            cert, key = self._leaf(f"server-{name}", f"/CN={name}", f"subjectAltName=DNS:{name}",
                                   "extendedKeyUsage=serverAuth")
            _give_to_server_user(key)
            self._servers[name] = (cert, key)
        return self._servers[name]


class TlsPostgres:
    """One PostgreSQL 15 server on 127.0.0.1 whose certificate names `cert_name`; TLS only."""

    def __init__(self, certs, cert_name="localhost", port=None, wal_level=None):
        self.certs = certs
        self.cert_name = cert_name
        self.port = port or free_port()
        self.wal_level = wal_level
        self.dir = tempfile.mkdtemp(prefix="shardurl-tls-pg.")
        os.chmod(self.dir, 0o755)
        _give_to_server_user(self.dir)
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "log")
        self.proc = None

    def start(self, timeout=60):
        cert, key = self.certs.server(self.cert_name)
        init = subprocess.run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", SERVER_USER,
                               "-A", "trust", "--no-sync"], capture_output=True, text=True,
                              timeout=120, cwd=self.dir, **_as_server_user())
        if init.returncode != 0:
            raise RuntimeError(f"initdb: {init.stdout}{init.stderr}")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.dir}'",
            "ssl": "on",
            "ssl_cert_file": f"'{cert}'",
            "ssl_key_file": f"'{key}'",
            "ssl_ca_file": f"'{self.certs.ca}'",  # for client certificates (cert authentication)
            "fsync": "off",
            "log_connections": "on",
        }
        if self.wal_level:
            settings["wal_level"] = self.wal_level
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in settings.items())
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("# TLS-only over TCP; the Unix socket is the test's own way in for setup.\n"
                    "local     all  all                    trust\n"
                    f"hostssl   all  {CERT_USER}  127.0.0.1/32  cert\n"
                    "hostssl   all  all       127.0.0.1/32  trust\n"
                    "hostnossl all  all       0.0.0.0/0     reject\n")
        self._log = open(self.logfile, "ab")
        _running.append(self)
        self.proc = subprocess.Popen([os.path.join(PG_BIN, "postgres"), "-D", self.data],
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=self.dir,
                                     start_new_session=True, **_as_server_user())
        deadline = time.monotonic() + timeout
        while True:
            ready = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-q", "-h", self.dir, "-p",
                                    str(self.port), "-U", SERVER_USER], timeout=30)
            if ready.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"PostgreSQL on port {self.port} did not start:\n{self.log()}")
            time.sleep(0.05)
        self.psql(f"CREATE ROLE {CERT_USER} LOGIN")
        return self

    def stop(self):
        """Fast shutdown (SIGINT), immediate (SIGQUIT) after 20 s; removes the directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGQUIT)
                self.proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.dir, ignore_errors=True)
        release_port(self.port)
        if self in _running:
            _running.remove(self)

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return "(no log)"

    def conninfo(self, host="localhost", db="postgres", user=SERVER_USER, **extra):
        """A TCP conninfo to this server; `extra` adds libpq options (sslmode=..., ...)."""
        parts = {"host": host, "port": self.port, "user": user, "dbname": db, **extra}
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def verify_full(self, db="postgres", **extra):
        return self.conninfo(db=db, sslmode="verify-full", sslrootcert=self.certs.ca, **extra)

    def psql(self, sql, db="postgres", args=()):
        """Runs SQL over the Unix socket (setup and inspection) and returns the unaligned output."""
        out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.dir,
                              "-p", str(self.port), "-U", SERVER_USER, "-d", db, *args, "-c", sql],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"psql on {self.port}/{db}: {out.stderr}")
        return out.stdout.strip()

    def psql_file(self, path, db):
        out = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.dir, "-p",
                              str(self.port), "-U", SERVER_USER, "-d", db, "-f", path],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"psql -f {path} on {self.port}/{db}: {out.stderr}")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class TlsRelay:
    """A TLS peer in front of one TlsPostgres that sends the server's bytes in full-size records.

    PostgreSQL 15 writes at most 8 KiB per TLS record (its send buffer), and libpq always leaves
    at least 8 KiB of room when it reads, so a record always fits and OpenSSL never holds bytes
    libpq has not taken. Peers that write larger records exist (PostgreSQL 17 and later send large
    messages unbuffered, and TLS-terminating poolers and proxies frame as they like): with a
    16 KiB record and less room in libpq's buffer, the rest of the record stays decrypted inside
    OpenSSL, already gone from the socket. This relay is such a peer. It answers the client's
    SSLRequest and handshakes with the `localhost` certificate (so verify-full holds), opens its
    own TLS session to the server (verifying it), passes the client's bytes on as they come, and
    holds the server's bytes until the server has been quiet for a moment: then it writes them in
    two TLS writes, the remainder modulo 16 KiB first and the rest in full 16 KiB records, so
    that a reply of more than 16 KiB always ends with a full-size record. The tail of such a reply
    is then typically left inside OpenSSL, where only a client that asks OpenSSL finds it.
    """

    def __init__(self, certs, upstream_port, port=None, quiet_s=0.003):
        self.certs = certs
        self.upstream_port = upstream_port
        self.port = port or free_port()
        self.quiet_s = quiet_s
        cert, key = certs.server("localhost")
        # The relay runs as this process' user: its own copy of the key (the server's belongs to
        # the server user).
        self._key_copy = os.path.join(certs.dir, "relay.key")
        shutil.copyfile(key, self._key_copy)
        os.chmod(self._key_copy, 0o600)
        self.server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.server_ctx.load_cert_chain(cert, self._key_copy)
        self.client_ctx = ssl.create_default_context(cafile=certs.ca)
        self.sessions = 0
        self.loop = None
        self._thread = None
        self._ready = threading.Event()
        self._error = None

    def start(self):
        _running.append(self)
        self._thread = threading.Thread(target=self._run, name="tls-relay", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        return self

    def stop(self):
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop_event.set)
            self._thread.join(10)
        release_port(self.port)
        if self in _running:
            _running.remove(self)

    def _run(self):
        self.loop = asyncio.new_event_loop()
        try:
            self.loop.run_until_complete(self._main())
        except Exception as e:  # noqa: BLE001 - surfaced to start()
            self._error = e
            self._ready.set()
        finally:
            self.loop.close()

    async def _main(self):
        self._stop_event = asyncio.Event()
        server = await asyncio.start_server(self._session, "127.0.0.1", self.port)
        self._ready.set()
        async with server:
            await self._stop_event.wait()
            server.close()

    async def _session(self, reader, writer):
        up_writer = None
        try:
            head = await reader.readexactly(8)
            _, code = struct.unpack("!II", head)
            if code == 80877104:  # GSSENCRequest: no
                writer.write(b"N")
                head = await reader.readexactly(8)
                _, code = struct.unpack("!II", head)
            if code != 80877103:  # not an SSLRequest: this peer speaks TLS only
                return
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(self.server_ctx)
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            up_writer.write(struct.pack("!II", 8, 80877103))
            if await up_reader.readexactly(1) != b"S":
                return
            await up_writer.start_tls(self.client_ctx, server_hostname="localhost")
            self.sessions += 1
            await asyncio.gather(self._pass_on(reader, up_writer),
                                 self._reframe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.close()

    async def _pass_on(self, reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def _reframe(self, reader, writer):
        while data := await reader.read(65536):
            held = bytearray(data)
            while True:
                try:
                    more = await asyncio.wait_for(reader.read(65536), self.quiet_s)
                except asyncio.TimeoutError:
                    break
                if not more:
                    break
                held += more
            head = len(held) % TLS_RECORD
            if head:
                writer.write(bytes(held[:head]))  # one TLS write: one record
            if len(held) > head:
                writer.write(bytes(held[head:]))  # one TLS write: full 16 KiB records
            await writer.drain()
        writer.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def run(options, command):
    parser = argparse.ArgumentParser(prog="tls_shards.py run")
    parser.add_argument("--timeout", type=float, default=240,
                        help="seconds the command may take; it is killed after (default 240)")
    args = parser.parse_args(options)
    if not command:
        parser.error("no command after --")
    base = tempfile.mkdtemp(prefix="shardurl-tls-certs.")
    servers = []
    relay = None
    try:
        certs = Certs(base)
        good = TlsPostgres(certs, "localhost")
        servers.append(good)
        good.start()
        wrong = TlsPostgres(certs, WRONG_NAME)
        servers.append(wrong)
        wrong.start()
        relay = TlsRelay(certs, good.port).start()
        env = {**os.environ,
               "SHARDURL_TLS_CERTS": certs.dir,
               "SHARDURL_TLS_PORT": str(good.port),
               "SHARDURL_TLS_WRONG_NAME_PORT": str(wrong.port),
               "SHARDURL_TLS_RELAY_PORT": str(relay.port)}
        try:
            done = subprocess.run(command, env=env, timeout=args.timeout)
            code = done.returncode
        except subprocess.TimeoutExpired:
            print(f"tls_shards.py: {command[0]} took over {args.timeout} s", file=sys.stderr)
            code = 124
        if code != 0:
            for pg in servers:
                print(f"---- PostgreSQL log (port {pg.port}, certificate for {pg.cert_name}) ----\n"
                      f"{pg.log()[-6000:]}", file=sys.stderr)
        return code
    finally:
        if relay is not None:
            relay.stop()
        for pg in servers:
            pg.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "run" or "--" not in sys.argv:
        sys.exit(__doc__)
    split = sys.argv.index("--")
    sys.exit(run(sys.argv[2:split], sys.argv[split + 1:]))
