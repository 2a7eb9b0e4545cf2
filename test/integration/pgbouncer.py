"""Debian's real PgBouncer in front of the suite's shards, for tests.

    with PgBouncer({"s27432": 27432, ...}, pool_mode="transaction") as bouncer:
        bouncer.conninfo("s27432")   # what shardurl (or psql) uses to reach that shard through it

One pgbouncer process fronts every shard, one [databases] entry each. Its pgbouncer.ini keeps
PgBouncer's built-in defaults except the lines a test cannot do without; `ini_text()` returns it,
and the comment above each line says why it is there:

- listen_addr: unset by default, which means Unix sockets only; shardurl connects over TCP.
- listen_port: the default 6432 belongs to a system PgBouncer, if one runs.
- pool_mode: only when asked for "transaction" (session is the default and is left unwritten).
- auth_file: the default auth_type (md5) is kept, and md5 needs the users and passwords from
  somewhere; auth_file has no default. It holds one user, postgres, with a plain-text password
  that PgBouncer checks by md5 challenge. Clients therefore log in to PgBouncer with a password,
  as they would in production; PgBouncer logs in to the shards (which use trust) as the same user.
  (auth_type=trust would still need the user in an auth_file; auth_type=any would change the
  authentication path clients take.)
- admin_users: lets the test read the console (SHOW DATABASES, SHOW STATS) to prove its traffic
  went through PgBouncer in the mode it meant.
- logfile, pidfile, unix_socket_dir: inside the helper's temporary directory, so nothing outside it
  is written (unix_socket_dir defaults to /tmp, shared with every other user of the machine).

Everything else (ignore_startup_parameters empty, max_client_conn 100, default_pool_size 20,
server_reset_query DISCARD ALL, query_wait_timeout 120 s, ...) is PgBouncer's default, because
that is what an operator who installs PgBouncer gets and what shardurl must work with.

PgBouncer refuses to run as root: as root the helper starts it with `-u postgres` and hands the
temporary directory to that user. It runs in the foreground as the helper's child (no -d), so
stop() is a signal to a pid the helper owns.

What PgBouncer 1.18 does with a client like shardurl, each seen through this helper with psql,
psycopg2 or a few lines of libpq:
- a startup parameter `options` (any value), in both modes: FATAL 08P01 "unsupported startup
  parameter: options" at login. libpq keeps the SQLSTATE out of PQerrorMessage unless
  PQsetErrorVerbosity(conn, PQERRORS_VERBOSE) is called right after PQconnectStart. With
  ignore_startup_parameters=options the parameter is dropped silently (not applied).
- transaction mode: SQL PREPARE or a named Parse stays on the server it ran on; the next
  transaction may get another server (26000 "does not exist") or a server that already has the
  name (42P05 "already exists"). A session SET stays on that server and reaches other clients.
  set_config(..., true) / SET LOCAL inside one pipeline (several statements, one Sync) holds for
  that transaction only. Many Syncs in one pipeline also worked (6 clients x 200 Syncs).
- LISTEN through transaction mode succeeds, but notifications are lost (PgBouncer logs "got packet
  'A' from server when not linked") or land on whichever client next runs a statement on that
  server.
- its own errors are ErrorResponse FATAL 08P01 then a close: "query_wait_timeout" (a query waited
  120 s for a server; at login too, when no server connection can be made), "server login has been
  failing, try again later (server_login_retry)" (about 15 s after the shard came back), "no more
  connections allowed (max_client_conn)", "server conn crashed?". libpq's non-blocking API returns
  that error as one result (SQLSTATE 08P01), then a second one, "server closed the connection
  unexpectedly", without a SQLSTATE; PQexec keeps only the second.
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

BINARY = "/usr/sbin/pgbouncer"
USER = "postgres"


def free_port():
    """A TCP port nobody listens on. SHARDURL_TEST_PORT_RANGE ("27440-27499") limits the choice to
    a range, for machines where other people's servers own the rest; otherwise the kernel picks."""
    wanted = os.environ.get("SHARDURL_TEST_PORT_RANGE")
    candidates = [0]
    if wanted:
        low, high = (int(p) for p in wanted.split("-"))
        candidates = list(range(low, high + 1))
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"no free port in SHARDURL_TEST_PORT_RANGE={wanted}")


class PgBouncer:
    """One pgbouncer process; a context manager that starts it and stops it.

    databases: {name: port} of PostgreSQL servers on 127.0.0.1 (dbname postgres on each), or
    {name: "libpq-style connect string for the [databases] line"}.
    """

    def __init__(self, databases, pool_mode="session", port=None, password="pgbouncer-test-pw",
                 settings=None):
        if pool_mode not in ("session", "transaction", "statement"):
            raise ValueError(f"pool_mode {pool_mode!r}")
        self.databases = dict(databases)
        self.pool_mode = pool_mode
        self.port = port or free_port()
        self.password = password
        self.settings = dict(settings or {})  # more [pgbouncer] lines, for experiments
        self.dir = tempfile.mkdtemp(prefix="shardurl-pgbouncer.")
        self.ini = os.path.join(self.dir, "pgbouncer.ini")
        self.logfile = os.path.join(self.dir, "pgbouncer.log")
        self.proc = None
        self._stderr = None

    # ---- configuration ----

    def ini_text(self):
        lines = ["[databases]"]
        for name, target in self.databases.items():
            if isinstance(target, int):
                target = f"host=127.0.0.1 port={target} dbname=postgres"
            lines.append(f"{name} = {target}")
        lines += [
            "",
            "[pgbouncer]",
            "; unset by default: Unix sockets only, and shardurl connects over TCP",
            "listen_addr = 127.0.0.1",
            "; the default 6432 may belong to a system PgBouncer",
            f"listen_port = {self.port}",
        ]
        if self.pool_mode != "session":
            lines += ["; session is the default", f"pool_mode = {self.pool_mode}"]
        lines += [
            "; auth_type stays md5 (the default); md5 needs users, and auth_file has no default",
            "auth_file = " + os.path.join(self.dir, "userlist.txt"),
            "; lets the test read SHOW DATABASES / SHOW STATS on the console",
            f"admin_users = {USER}",
            "; files in the test's own directory (the defaults: none, none, /tmp)",
            f"logfile = {self.logfile}",
            "pidfile = " + os.path.join(self.dir, "pgbouncer.pid"),
            f"unix_socket_dir = {self.dir}",
        ]
        for key, value in self.settings.items():
            lines.append(f"{key} = {value}")
        return "\n".join(lines) + "\n"

    def conninfo(self, database, **extra):
        """libpq key=value string that reaches `database` through this PgBouncer."""
        parts = {"host": "127.0.0.1", "port": self.port, "dbname": database, "user": USER,
                 "password": self.password, **extra}
        return " ".join(f"{k}={v}" for k, v in parts.items())

    # ---- process ----

    def start(self, timeout=15):
        if not os.path.exists(BINARY):
            raise RuntimeError(f"{BINARY} is missing: install Debian's pgbouncer (scripts/deps)")
        with open(self.ini, "w") as f:
            f.write(self.ini_text())
        with open(os.path.join(self.dir, "userlist.txt"), "w") as f:
            f.write(f'"{USER}" "{self.password}"\n')
        argv = [BINARY]
        if os.geteuid() == 0:
            pw = pwd.getpwnam(USER)
            for path in [self.dir] + [os.path.join(self.dir, n) for n in os.listdir(self.dir)]:
                os.chown(path, pw.pw_uid, pw.pw_gid)
            argv += ["-u", USER]
        argv.append(self.ini)
        self._stderr = open(os.path.join(self.dir, "stderr"), "wb")
        # cwd: the postgres user must be able to stand in it after dropping root.
        self.proc = subprocess.Popen(argv, stdout=self._stderr, stderr=subprocess.STDOUT, cwd="/",
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.admin("SHOW VERSION")
                return self
            except RuntimeError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pgbouncer did not accept connections within {timeout} s:\n"
                                   f"{self.log()}")
            time.sleep(0.05)

    def stop(self):
        """SIGTERM (PgBouncer's immediate shutdown), SIGKILL after 10 s; removes the directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._log_copy = self.log()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode if self.proc else None

    def log(self):
        """PgBouncer's log (its stderr, which also gets every line of the logfile)."""
        if getattr(self, "_log_copy", None) is not None and not os.path.isdir(self.dir):
            return self._log_copy
        try:
            with open(os.path.join(self.dir, "stderr"), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # ---- clients ----

    def psql(self, database, sql, timeout=30):
        """Runs SQL through PgBouncer with psql; returns (returncode, stdout, stderr)."""
        env = {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"}
        out = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                              "-p", str(self.port), "-U", USER, "-d", database, "-c", sql],
                             capture_output=True, text=True, timeout=timeout, env=env)
        return out.returncode, out.stdout.strip(), out.stderr.strip()

    def admin(self, command):
        """A console command (SHOW ...); returns its rows as dicts."""
        env = {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "5"}
        out = subprocess.run(["psql", "-X", "-q", "-A", "-F", "\t", "-P", "footer=off",
                              "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d",
                              "pgbouncer", "-c", command],
                             capture_output=True, text=True, timeout=30, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"pgbouncer console {command!r}: {out.stderr.strip()}")
        lines = out.stdout.splitlines()
        if not lines:
            return []
        header = lines[0].split("\t")
        return [dict(zip(header, line.split("\t"))) for line in lines[1:]]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
