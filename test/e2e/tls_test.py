#!/usr/bin/python3
"""shardurl over TLS to its shards, end to end: the real `shardurl serve` and `shardurl reshard`
with `sslmode=verify-full` conninfos by host NAME (host=localhost) against PostgreSQL 15 servers
that take TLS only (test/integration/tls_shards.py: certificates made here with openssl, pg_hba
hostssl only, log_connections on).

  - serve: creates, lookups, redirects and /readyz work; every session shardurl holds on the
    shards (pool, probe, change feed) is TLS by the servers' own pg_stat_ssl; a delete through one
    instance reaches another instance's cache through its change feed (LISTEN over TLS).
  - a shard whose certificate names another host, and one whose root certificate is missing, are
    reported down by /readyz with libpq's reason, promptly; their keys answer 503 at once and the
    other shard's keys keep working.
  - reshard: 2 -> 3 shards whose subscriptions connect with the same verify-full conninfo (the
    source server logs the replication connections as SSL), every link then on its new owner.

Usage (through ctest): /usr/bin/python3 test/e2e/tls_test.py BINARY
Starts its own servers (ports from SHARDURL_TEST_PORT_RANGE when set) and needs no suite shards.
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
import tls_shards  # noqa: E402

BINARY = None
KEY = "tls-test-api-key-0123456789"


def unique(tag):
    return f"https://example.com/{tag}/{uuid.uuid4().hex}"


def post(server, url):
    return server.request("POST", "/urls?full_url=" + url)


def redirect(server, url_id):
    """GET /{id}: the status and the Location header."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/" + url_id)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("Location")
    finally:
        conn.close()


def apply_initdb(pg, db):
    pg.psql(f"CREATE DATABASE {db}")
    for name in sorted(os.listdir(os.path.join(harness.REPO, "initdb"))):
        if name.endswith(".sql"):
            pg.psql_file(os.path.join(harness.REPO, "initdb", name), db)


def write_config(shards, **extra):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"shards": shards, **extra}, f)
    f.close()
    return f.name


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = tempfile.mkdtemp(prefix="shardurl-tls-e2e.")
        cls.certs = tls_shards.Certs(cls.base)
        cls.servers = []
        # a and b live on one server, c (reshard's target) on another: a subscription to a
        # database of the same server would wait on its own slot. Sources need wal_level logical.
        cls.one = cls.start(tls_shards.TlsPostgres(cls.certs, "localhost", wal_level="logical"))
        cls.two = cls.start(tls_shards.TlsPostgres(cls.certs, "localhost", wal_level="logical"))
        cls.wrong = cls.start(tls_shards.TlsPostgres(cls.certs, tls_shards.WRONG_NAME))
        for pg, db in ((cls.one, "shard_a"), (cls.one, "shard_b"), (cls.two, "shard_c"),
                       (cls.wrong, "shard_c")):
            apply_initdb(pg, db)

    @classmethod
    def start(cls, pg):
        cls.servers.append(pg)
        return pg.start()

    @classmethod
    def tearDownClass(cls):
        for pg in cls.servers:
            pg.stop()
        shutil.rmtree(cls.base, ignore_errors=True)

    def shard(self, name, pg, db, **extra):
        return {"name": name, "conninfo": pg.verify_full(db=db, **extra)}

    def serve(self, shards, **extra):
        port = tls_shards.free_port()
        self.addCleanup(tls_shards.release_port, port)
        return harness.Server(BINARY, shards=shards, port=port, extra={"api_keys": [KEY], **extra})

    def non_tls_sessions(self, pg, dbs):
        """Sessions over TCP on `pg` to `dbs` that are not TLS, and how many are."""
        where = "datname IN (" + ",".join(f"'{d}'" for d in dbs) + ") AND client_addr IS NOT NULL"
        rows = pg.psql("SELECT a.application_name, s.ssl FROM pg_stat_activity a "
                       f"JOIN pg_stat_ssl s USING (pid) WHERE {where}")
        sessions = [line.rsplit("|", 1) for line in rows.splitlines() if line]
        return [name for name, ssl in sessions if ssl != "t"], len(sessions)

    def test_serve_over_verify_full(self):
        shards = [self.shard("a", self.one, "shard_a"), self.shard("b", self.one, "shard_b"),
                  self.shard("c", self.two, "shard_c")]
        with self.serve(shards) as first, self.serve(shards, cache={"ttl_s": 3600}) as second:
            for server in (first, second):
                server.wait_ready()
                status, body = server.request("GET", "/readyz")
                self.assertEqual(status, 200, body)
                self.assertEqual({n: s["state"] for n, s in body["shards"].items()},
                                 {"a": "up", "b": "up", "c": "up"})
            links = {}
            for _ in range(40):
                url = unique("tls")
                status, body = post(first, url)
                self.assertEqual(status, 200, body)
                links[body["url_id"]] = (url, body["server"]["hostname"])
            self.assertEqual({owner for _, owner in links.values()}, {"a", "b", "c"})
            for url_id, (url, _) in links.items():
                status, body = second.request("GET", "/urls/" + url_id)
                self.assertEqual((status, body["url"]), (200, url))
                self.assertEqual(redirect(first, url_id), (302, url))

            # Every session shardurl holds is TLS, the change feeds' among them.
            for pg, dbs in ((self.one, ["shard_a", "shard_b"]), (self.two, ["shard_c"])):
                plain, total = self.non_tls_sessions(pg, dbs)
                self.assertEqual(plain, [])
                self.assertGreater(total, 0)
            feeds = self.one.psql("SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s "
                                  "USING (pid) WHERE a.application_name = 'shardurl change feed' "
                                  "AND s.ssl")
            self.assertEqual(int(feeds), 4)  # two instances, two shards on this server

            # A delete through the first instance reaches the second's cache over its feed.
            for url_id in list(links)[:6]:
                self.assertEqual(redirect(second, url_id)[0], 302)  # cached now
                status, _ = first.request("DELETE", "/urls/" + url_id, headers={"X-Api-Key": KEY})
                self.assertEqual(status, 204)
                deadline = time.monotonic() + 1.5
                while redirect(second, url_id)[0] != 410:
                    self.assertLess(time.monotonic(), deadline, f"{url_id} still redirects")
                    time.sleep(0.02)

    def test_a_shard_that_fails_verification_is_down_with_the_reason(self):
        missing = os.path.join(self.certs.dir, "no-such-root.crt")
        shards = [self.shard("a", self.one, "shard_a"),
                  {"name": "b", "conninfo": self.one.conninfo(db="shard_b", sslmode="verify-full",
                                                              sslrootcert=missing)},
                  self.shard("c", self.wrong, "shard_c")]
        with self.serve(shards) as server:
            deadline = time.monotonic() + 10
            while True:
                status, body = server.request("GET", "/readyz")
                states = {n: s["state"] for n, s in body["shards"].items()}
                if states == {"a": "up", "b": "down", "c": "down"}:
                    break
                self.assertLess(time.monotonic(), deadline, body)
                time.sleep(0.05)
            self.assertEqual(status, 503)
            self.assertIn('server certificate for "wrong.shardurl.invalid" does not match host '
                          'name "localhost"', body["shards"]["c"]["error"])
            self.assertIn(f'root certificate file "{missing}" does not exist',
                          body["shards"]["b"]["error"])
            answered = {}
            for _ in range(30):
                start = time.monotonic()
                status, body = post(server, unique("down"))
                # Never a hang: well within the request deadline (2 s) plus a slow machine.
                self.assertLess(time.monotonic() - start, 5)
                if status == 200:
                    self.assertEqual(body["server"]["hostname"], "a")
                    answered["a"] = answered.get("a", 0) + 1
                else:
                    self.assertEqual(status, 503, body)
                    self.assertIn(body["detail"], ("shard b unavailable", "shard c unavailable"))
                    answered[body["detail"]] = answered.get(body["detail"], 0) + 1
            self.assertEqual(len(answered), 3, answered)  # every shard owned some of them
            self.assertIn("does not match host name", server.output())

    def test_reshard_with_verify_full_subscriptions(self):
        # Databases of their own, so the serve test's links do not count here.
        run = uuid.uuid4().hex[:6]
        dbs = {"a": (self.one, f"rs_a_{run}"), "b": (self.one, f"rs_b_{run}"),
               "c": (self.two, f"rs_c_{run}")}
        for pg, db in dbs.values():
            apply_initdb(pg, db)
        shards = {name: self.shard(name, pg, db) for name, (pg, db) in dbs.items()}
        old = write_config([shards["a"], shards["b"]])
        new = write_config([shards["a"], shards["b"], shards["c"]])
        try:
            with self.serve([shards["a"], shards["b"]]) as server:
                server.wait_ready()
                links = {}
                for _ in range(60):
                    url = unique("reshard")
                    status, body = post(server, url)
                    self.assertEqual(status, 200, body)
                    links[body["url_id"]] = url
                # A target's server opens the subscription's files itself: one it lacks is
                # refused before anything changes, in libpq's words.
                missing = os.path.join(self.certs.dir, "not-on-the-target.crt")
                pg, db = dbs["a"]
                bad = write_config([{**shards["a"], "replication_conninfo": pg.conninfo(
                    db=db, sslmode="verify-full", sslrootcert=missing)}, shards["b"], shards["c"]])
                try:
                    out = subprocess.run([BINARY, "reshard", "--config", old, "--to", bad,
                                          "--dry-run"], capture_output=True, text=True, timeout=60)
                finally:
                    os.unlink(bad)
                self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
                self.assertIn(f'root certificate file "{missing}" does not exist',
                              out.stdout + out.stderr)

                out = subprocess.run([BINARY, "reshard", "--config", old, "--to", new],
                                     capture_output=True, text=True, timeout=180)
                self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
                # The running instance follows the new ring, and every link still answers.
                deadline = time.monotonic() + 10
                while server.request("GET", "/readyz")[1]["ring"]["version"] < 2:
                    self.assertLess(time.monotonic(), deadline)
                    time.sleep(0.05)
                owners = {}
                for url_id, url in links.items():
                    status, body = server.request("GET", "/urls/" + url_id)
                    self.assertEqual((status, body["url"]), (200, url))
                    owners.setdefault(body["server"]["hostname"], []).append(url_id)
            moved = owners.get("c", [])
            self.assertGreater(len(moved), 0)
            pg, db = dbs["c"]
            self.assertEqual(int(pg.psql("SELECT count(*) FROM url_table", db=db)), len(moved))
            # The subscriptions reached the source over TLS: log_connections says so (only this
            # test makes replication connections).
            replication = [line for line in self.one.log().splitlines()
                           if "replication connection authorized" in line]
            self.assertTrue(replication, "no replication connection to the source was logged")
            for line in replication:
                self.assertIn("SSL enabled", line)
        finally:
            os.unlink(old)
            os.unlink(new)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
