#!/usr/bin/python3
"""shardurl reshard, end to end: grow, shrink and reweight a cluster while two instances serve a
mixed load (creates, reads, redirects, deletes), kill the command at every step and run it again,
restart a target shard mid-move, refuse a second concurrent run and a shard that cannot take part;
afterwards every link is exactly once on the shard uhashring gives it under the new ring, deleted
links stay deleted, and nothing of the move is left on any shard.

Each run uses databases of its own on the suite's three shards and on a fourth PostgreSQL server
started here (scripts/cluster), so the suite's own data and metadata are never touched.

Usage (through ctest): /usr/bin/python3 test/e2e/reshard_test.py BINARY
"""
import concurrent.futures
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

from uhashring import HashRing

import harness

BINARY = None
KEY = "reshard-test-key-0123456789"
NAMES = ["5432", "5433", "5434", "5435"]


def tutorial_id(url):
    import base64
    import hashlib
    return base64.b64encode(hashlib.sha256(url.encode()).digest()).decode()[:5]


def fourth_port():
    # Below the ephemeral range like the suite's own shards: ten above the first of them.
    return harness.shard_ports()[0] + 10


class Servers:
    """The suite's three shard servers plus a fourth one, started (once) for this test."""

    directory = None

    @classmethod
    def start(cls):
        if cls.directory is None:
            cls.directory = tempfile.mkdtemp(prefix="shardurl-reshard-")
            os.chmod(cls.directory, 0o755)
            subprocess.run([os.path.join(harness.REPO, "scripts", "cluster"), "start", "--dir",
                            cls.directory, "--ports", str(fourth_port()), "--no-sql"],
                           check=True, capture_output=True, timeout=180)
        return harness.shard_ports() + [fourth_port()]

    @classmethod
    def restart(cls, port, mode="immediate"):
        directory = cls.directory if port == fourth_port() else os.environ["SHARDURL_TEST_CLUSTER_DIR"]
        script = os.path.join(harness.REPO, "scripts", "cluster")
        subprocess.run([script, "stop-shard", "--dir", directory, "--port", str(port), "--mode", mode],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([script, "start-shard", "--dir", directory, "--port", str(port), "--no-sql"],
                       check=True, capture_output=True, timeout=120)

    @classmethod
    def stop(cls):
        if cls.directory is not None:
            subprocess.run([os.path.join(harness.REPO, "scripts", "cluster"), "stop", "--dir",
                            cls.directory], capture_output=True, timeout=120)
            shutil.rmtree(cls.directory, ignore_errors=True)
            cls.directory = None


class Cluster:
    """One database of this run on each of the four servers, with the shard schema."""

    def __init__(self, tag, hash_name="md5"):
        self.db = f"reshard_{tag}_{os.getpid()}"
        self.hash = hash_name
        self.ports = dict(zip(NAMES, Servers.start()))
        for port in self.ports.values():
            harness.psql(port, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
            harness.psql(port, f"CREATE DATABASE {self.db}")
            harness.apply_initdb(port, self.db)
        self.files = tempfile.mkdtemp(prefix="shardurl-reshard-config-")

    def drop(self):
        # A failed test can leave a move half done: subscriptions first (without their remote
        # slots, which may be on a server that is gone), then the slots left on the publishers.
        for port in self.ports.values():
            try:
                subs = harness.psql(port, "SELECT subname FROM pg_subscription s JOIN pg_database d "
                                    f"ON d.oid = s.subdbid WHERE d.datname = '{self.db}'", self.db)
            except RuntimeError:
                continue
            for sub in filter(None, subs.split("\n")):
                harness.psql(port, f"ALTER SUBSCRIPTION {sub} DISABLE", self.db)
                harness.psql(port, f"ALTER SUBSCRIPTION {sub} SET (slot_name = NONE)", self.db)
                harness.psql(port, f"DROP SUBSCRIPTION {sub}", self.db)
        for port in self.ports.values():
            for _ in range(50):
                try:
                    harness.psql(port, "SELECT pg_terminate_backend(active_pid) FROM "
                                 f"pg_replication_slots WHERE database = '{self.db}' AND active; "
                                 "SELECT pg_drop_replication_slot(slot_name) FROM "
                                 f"pg_replication_slots WHERE database = '{self.db}'")
                    break
                except RuntimeError:
                    time.sleep(0.1)  # the walsender had not let go of the slot yet
            harness.psql(port, f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)")
        shutil.rmtree(self.files, ignore_errors=True)

    def config(self, name, shards, listen_port=None):
        """Writes a config file: `shards` is {name: weight} (or a list of names)."""
        if isinstance(shards, list):
            shards = {n: 1 for n in shards}
        body = {"listen": f"127.0.0.1:{listen_port or harness.free_port()}", "api_keys": [KEY],
                "ring": {"hash": self.hash},
                "shards": [{"name": n, "weight": w, "conninfo":
                            f"host=127.0.0.1 port={self.ports[n]} user=postgres dbname={self.db}"}
                           for n, w in shards.items()]}
        path = os.path.join(self.files, name + ".json")
        with open(path, "w") as f:
            json.dump(body, f)
        return path

    def ring(self, shards):
        if isinstance(shards, list):
            shards = {n: 1 for n in shards}
        kwargs = {"hash_fn": "ketama"} if self.hash == "ketama" else {}
        vnodes = 40 if self.hash == "ketama" else 160
        return HashRing(nodes={n: {"weight": w, "vnodes": vnodes} for n, w in shards.items()}, **kwargs)

    def rows(self):
        """{url_id: [(shard, url, deleted)]} over every shard."""
        out = {}
        for name, port in self.ports.items():
            text = harness.psql(port, "SELECT url_id || E'\\t' || url || E'\\t' || (deleted_at IS NOT NULL) "
                                      "FROM url_table", db=self.db)
            for line in text.splitlines():
                url_id, url, deleted = line.split("\t")
                out.setdefault(url_id, []).append((name, url, deleted == "true"))
        return out

    def leftovers(self):
        """What a move may leave behind, on every server and in this run's databases."""
        found = []
        for name, port in self.ports.items():
            for what, sql, db in [
                    ("slots", "SELECT string_agg(slot_name, ',') FROM pg_replication_slots "
                              "WHERE slot_name LIKE 'shardurl%'", "postgres"),
                    ("publications", "SELECT string_agg(pubname, ',') FROM pg_publication", self.db),
                    ("subscriptions", "SELECT string_agg(subname, ',') FROM pg_subscription "
                                      f"WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = '{self.db}')",
                     self.db),
                    ("triggers", "SELECT string_agg(tgname, ',') FROM pg_trigger "
                                 "WHERE tgrelid = 'url_table'::regclass AND NOT tgisinternal", self.db),
                    ("meta", "SELECT string_agg(key, ',') FROM shardurl_meta "
                             "WHERE key IN ('move', 'fence_until')", self.db),
                    ("markers", "SELECT string_agg(pair, ',') FROM shardurl_move_marker", self.db),
                    ("temporary tables", "SELECT string_agg(relname, ',') FROM pg_class "
                                         "WHERE relpersistence = 't'", self.db)]:
                value = harness.psql(port, sql, db=db)
                if value:
                    found.append(f"{name} {what}: {value}")
        return found


def reshard(*args, timeout=180):
    return subprocess.run([BINARY, "reshard", *args], capture_output=True, text=True, timeout=timeout)


def reshard_killed_at(marker, old, new, timeout=120):
    """Runs the command until a line of its output contains `marker`, then kills it (SIGKILL)."""
    proc = subprocess.Popen([BINARY, "reshard", "--config", old, "--to", new],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    killed = False
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stdout:
            seen.append(line)
            if marker in line:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            if time.monotonic() > deadline:
                break
    finally:
        proc.kill()
        proc.wait()
    return killed, "".join(seen)


class Client:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if isinstance(body, dict):
                body = json.dumps(body)
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, dict(resp.getheaders()), (json.loads(data) if data else None)
        finally:
            conn.close()


class Load:
    """A mixed load on several instances: creates, reads and redirects of known links, and keyed
    deletes. Records every answer and its latency."""

    def __init__(self, ports, links, threads=6):
        self.clients = [Client(p) for p in ports]
        self.links = dict(links)  # url_id -> url, live
        self.deleted = set()      # deletes answered 204 (or 410: deleted already)
        self.deleting = set()     # deletes sent, not answered yet
        self.created = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.records = []  # (kind, status, seconds, detail)
        self.threads = [threading.Thread(target=self.work, args=(i,), daemon=True) for i in range(threads)]

    def record(self, kind, status, took, detail=""):
        with self.lock:
            self.records.append((kind, status, took, detail))

    def work(self, n):
        rng = random.Random(n)
        while not self.stopping.is_set():
            client = rng.choice(self.clients)
            roll = rng.random()
            started = time.monotonic()
            try:
                if roll < 0.3:
                    url = f"https://example.com/reshard/{n}/{uuid.uuid4().hex}"
                    status, _, body = client.call("POST", "/urls", {"url": url})
                    if status in (200, 201):
                        with self.lock:
                            self.created[body["url_id"]] = url
                            self.links[body["url_id"]] = url
                    self.record("POST", status, time.monotonic() - started, body)
                elif roll < 0.36:
                    with self.lock:
                        candidates = [i for i in self.links if i not in self.deleted
                                      and i not in self.deleting]
                        url_id = rng.choice(candidates) if candidates else None
                        if url_id:
                            self.deleting.add(url_id)  # from now on it may answer 410
                    if url_id:
                        status, _, body = client.call("DELETE", "/urls/" + url_id, headers={"X-Api-Key": KEY})
                        with self.lock:
                            self.deleting.discard(url_id)
                            if status in (204, 410):
                                self.deleted.add(url_id)
                        self.record("DELETE", status, time.monotonic() - started, (url_id, body))
                else:
                    with self.lock:
                        url_id = rng.choice(list(self.links))
                        gone = url_id in self.deleted or url_id in self.deleting
                    path = ("/urls/" if roll < 0.7 else "/") + url_id
                    status, headers, body = client.call("GET", path)
                    with self.lock:  # a delete sent before this answer came may have won
                        gone = gone or url_id in self.deleted or url_id in self.deleting
                    ok = status == (200 if path.startswith("/urls/") else 302) or (gone and status == 410)
                    self.record("GET" if path.startswith("/urls/") else "REDIRECT",
                                status if ok else f"bad {status}", time.monotonic() - started,
                                (url_id, body))
            except Exception as e:  # noqa: BLE001 - a transport failure is a finding
                self.record("ERROR", None, time.monotonic() - started, repr(e))
            time.sleep(0.002)

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)
        return self.records


def seed(port, count, tag):
    c = Client(port)
    links = {}

    def one(i):
        url = f"https://example.com/seed/{tag}/{i}"
        status, _, body = c.call("POST", "/urls?full_url=" + url)
        assert status == 200, (status, body)
        return body["url_id"], url

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for url_id, url in pool.map(one, range(count)):
            links[url_id] = url
    return links


class Reshard(unittest.TestCase):
    @classmethod
    def tearDownClass(cls):
        Servers.stop()

    def check_placement(self, cluster, shards, load_links, deleted):
        ring = cluster.ring(shards)
        rows = cluster.rows()
        wrong = []
        for url_id, url in load_links.items():
            copies = rows.get(url_id, [])
            live = [c for c in copies if not c[2]]
            owner = ring.get_node(url_id)
            if len(copies) != 1 or copies[0][0] != owner or copies[0][1] != url:
                wrong.append((url_id, owner, copies))
            elif url_id in deleted and live:
                wrong.append((url_id, "deleted, but live", copies))
        self.assertEqual(wrong[:5], [], f"{len(wrong)} of {len(load_links)} links misplaced")
        # No row anywhere that is not on its owner.
        misplaced = [(i, c) for i, cs in rows.items() for c in cs if c[0] != ring.get_node(i)]
        self.assertEqual(misplaced[:5], [], f"{len(misplaced)} rows not on their owner")
        self.assertEqual(cluster.leftovers(), [])

    def check_load(self, records, label, servers=()):
        bad = [r for r in records if r[1] is None or (isinstance(r[1], str)) or r[1] >= 500
               or (r[0] == "POST" and r[1] not in (200, 201))
               or (r[0] == "DELETE" and r[1] not in (204, 410))]
        slow = [r for r in records if r[2] > 2.0]
        counts = {}
        for r in records:
            counts[(r[0], r[1])] = counts.get((r[0], r[1]), 0) + 1
        worst_post = max((r[2] for r in records if r[0] == "POST"), default=0)
        print(f"{label}: {len(records)} requests {sorted(counts.items(), key=str)}; slowest "
              f"{max((r[2] for r in records), default=0):.3f} s, slowest create {worst_post:.3f} s",
              file=sys.stderr)
        logs = "".join(f"\n--- shardurl log ---\n{server.output()[-4000:]}" for server in servers)
        self.assertEqual(bad[:5], [], f"{len(bad)} bad answers during {label}{logs}")
        self.assertEqual(slow[:5], [], f"{len(slow)} answers slower than 2 s during {label}{logs}")

    def test_grow_and_shrink_under_load_on_two_instances(self):
        cluster = Cluster("grow")
        try:
            three, four = cluster.config("three", NAMES[:3]), cluster.config("four", NAMES)
            a = harness.Server(BINARY, db=cluster.db, extra={"api_keys": [KEY]},
                               names=NAMES[:3], ports=[cluster.ports[n] for n in NAMES[:3]])
            b = harness.Server(BINARY, db=cluster.db, extra={"api_keys": [KEY], "workers": 2},
                               names=NAMES[:3], ports=[cluster.ports[n] for n in NAMES[:3]])
            try:
                for server in (a, b):
                    server.wait_ready()
                links = seed(a.port, 400, "grow")
                # A row the tutorial stored, under its own id, on a shard whose keys move.
                old, new = cluster.ring(NAMES[:3]), cluster.ring(NAMES)
                i = 0
                while True:
                    tutorial_url = f"https://example.com/tutorial/{i}"
                    tid = tutorial_id(tutorial_url)
                    if new.get_node(tid) == "5435":
                        break
                    i += 1
                port = cluster.ports[old.get_node(tid)]
                harness.psql(port, f"INSERT INTO url_table (url, url_id) VALUES ('{tutorial_url}', '{tid}'); "
                                   "UPDATE shardurl_meta SET value = '1' WHERE key = 'tutorial_ids'", db=cluster.db)
                plan = reshard("--config", three, "--to", four, "--dry-run")
                self.assertEqual(plan.returncode, 0, plan.stderr)
                self.assertIn("5435", plan.stdout)
                self.assertEqual(cluster.leftovers(), [])  # a dry run changes nothing
                load = Load([a.port, b.port], links).start()
                time.sleep(1.0)
                # /readyz shows the move while it runs.
                phases = set()
                watching = threading.Event()

                def watch():
                    while not watching.is_set():
                        status, body = b.request("GET", "/readyz")
                        if "move" in body:
                            phases.add(body["move"]["phase"])
                        time.sleep(0.05)

                watcher = threading.Thread(target=watch, daemon=True)
                watcher.start()
                grown = reshard("--config", three, "--to", four)
                watching.set()
                watcher.join()
                print(grown.stdout, file=sys.stderr)
                records = load.stop()
                self.assertEqual(grown.returncode, 0, grown.stdout + grown.stderr)
                self.assertIn("done: the cluster serves ring version 2", grown.stdout)
                self.assertIn("copy", phases)
                self.check_load(records, "grow 3 -> 4", (a, b))
                self.check_placement(cluster, NAMES, load.links, load.deleted)
                for server in (a, b):
                    status, body = server.request("GET", "/readyz")
                    self.assertEqual((status, body["ring"]["version"], sorted(body["shards"])),
                                     (200, 2, NAMES))
                moved = [i for i in links if cluster.ring(NAMES).get_node(i) == "5435"
                         and i not in load.deleted]
                self.assertTrue(moved)
                status, body = b.request("GET", "/urls/" + moved[0])
                self.assertEqual((status, body["server"]["hostname"]), (200, "5435"))
                # A later instance with either file serves the current ring.
                for path in (three, four):
                    with open(path) as f:
                        listen = json.load(f)["listen"]
                    late = subprocess.Popen([BINARY, "serve", "--config", path],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    try:
                        c = Client(int(listen.rsplit(":", 1)[1]))
                        deadline = time.monotonic() + 10
                        while True:
                            try:
                                status, _, body = c.call("GET", "/urls/" + moved[0])
                                if status == 200:
                                    break
                            except OSError:
                                pass
                            self.assertLess(time.monotonic(), deadline)
                            time.sleep(0.1)
                        self.assertEqual(body["server"]["hostname"], "5435")
                    finally:
                        late.terminate()
                        late.wait(15)
                again = reshard("--config", three, "--to", four)
                self.assertEqual(again.returncode, 0, again.stderr)
                self.assertIn("nothing to do", again.stdout)
                # The tutorial's row moved with its id: the same URL still answers with it.
                for server in (a, b):
                    status, body = server.request("POST", "/urls?full_url=" + tutorial_url)
                    self.assertEqual((status, body["url_id"], body["server"]["hostname"]),
                                     (200, tid, "5435"))

                # Shrink back, killing the command at every step on the way.
                previous = load
                load = Load([a.port, b.port], previous.links)
                load.deleted = set(previous.deleted)
                load.start()
                for marker in ("ring version", "rows (", "cutover:", "switched", "verify:", "cleanup:"):
                    killed, output = reshard_killed_at(marker, four, three)
                    self.assertTrue(killed, f"never reached '{marker}':\n{output}")
                # The operator may have put the new config in place already: the move's own
                # record says what moves.
                shrunk = reshard("--config", three, "--to", three)
                records = load.stop()
                self.assertEqual(shrunk.returncode, 0, shrunk.stdout + shrunk.stderr)
                self.check_load(records, "shrink 4 -> 3, killed at every step", (a, b))
                self.check_placement(cluster, NAMES[:3], load.links, load.deleted)
                for server in (a, b):
                    status, body = server.request("GET", "/readyz")
                    self.assertEqual(sorted(body["shards"]), NAMES[:3])
            finally:
                for server in (a, b):
                    server.stop()
        finally:
            cluster.drop()

    def test_reweight_in_ketama_with_a_target_restarted_mid_move(self):
        cluster = Cluster("weight", "ketama")
        try:
            before = cluster.config("before", {"5432": 1, "5433": 1, "5434": 1})
            after = cluster.config("after", {"5432": 1, "5433": 3, "5434": 1})
            a = harness.Server(BINARY, db=cluster.db, extra={"api_keys": [KEY], "ring": {"hash": "ketama"}},
                               names=NAMES[:3], ports=[cluster.ports[n] for n in NAMES[:3]])
            try:
                a.wait_ready()
                links = seed(a.port, 300, "weight")
                load = Load([a.port], links, threads=4).start()
                proc = subprocess.Popen([BINARY, "reshard", "--config", before, "--to", after],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                output = []
                restarted = False
                for line in proc.stdout:
                    output.append(line)
                    if not restarted and ("copying" in line or "streaming" in line):
                        Servers.restart(cluster.ports["5433"])  # the target of every pair
                        restarted = True
                code = proc.wait(timeout=180)
                records = load.stop()
                self.assertTrue(restarted)
                self.assertEqual(code, 0, "".join(output))
                # The target's own keys were unavailable while it restarted: only those may fail.
                records = [r for r in records if not (str(r[1]).endswith(("503", "504"))
                                                      and "5433" in str(r[3]))]
                self.check_load(records, "reweight (ketama), target restarted", (a,))
                self.check_placement(cluster, {"5432": 1, "5433": 3, "5434": 1}, load.links, load.deleted)
            finally:
                a.stop()
        finally:
            cluster.drop()

    def test_a_second_concurrent_run_and_a_shard_that_cannot_take_part_are_refused(self):
        cluster = Cluster("refuse")
        try:
            three, four = cluster.config("three", NAMES[:3]), cluster.config("four", NAMES)
            # Another reshard holds the lock (a session of this test does it as the command would).
            holder = subprocess.Popen(["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(cluster.ports["5433"]),
                                       "-U", "postgres", "-d", cluster.db, "-c",
                                       f"SELECT pg_advisory_lock({0x7368726475726c}); SELECT pg_sleep(30)"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      env={**os.environ, "PGAPPNAME": "reshard-test-holder"})
            try:
                time.sleep(1.0)
                second = reshard("--config", three, "--to", four)
                self.assertEqual(second.returncode, 1)
                self.assertIn("another shardurl reshard is running", second.stderr)
            finally:
                harness.psql(cluster.ports["5433"], "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                                    "WHERE application_name = 'reshard-test-holder'")
                holder.kill()
                holder.wait()
            # A shard whose schema is too old: refused before anything changes, naming the fix.
            harness.psql(cluster.ports["5435"], "UPDATE shardurl_meta SET value = '2' WHERE key = 'schema_version'",
                         db=cluster.db)
            refused = reshard("--config", three, "--to", four)
            self.assertEqual(refused.returncode, 1)
            self.assertIn("shard 5435 has schema version 2", refused.stderr)
            self.assertIn("apply initdb", refused.stderr)
            self.assertEqual(cluster.leftovers(), [])
            self.assertEqual(harness.psql(cluster.ports["5432"], "SELECT value FROM shardurl_meta WHERE key = 'ring_version'",
                                          db=cluster.db), "0")
            # A target that cannot run the subscriptions: refused with the setting to raise.
            harness.psql(cluster.ports["5435"], "UPDATE shardurl_meta SET value = '3' WHERE key = 'schema_version'",
                         db=cluster.db)
            harness.psql(cluster.ports["5435"], "ALTER SYSTEM SET max_logical_replication_workers = 0")
            Servers.restart(cluster.ports["5435"], mode="fast")
            try:
                refused = reshard("--config", three, "--to", four, "--dry-run")
                self.assertEqual(refused.returncode, 1, refused.stdout)
                self.assertIn("shard 5435 allows 0 logical replication workers", refused.stderr)
                self.assertIn("raise max_logical_replication_workers", refused.stderr)
            finally:
                harness.psql(cluster.ports["5435"], "ALTER SYSTEM RESET max_logical_replication_workers")
                Servers.restart(cluster.ports["5435"], mode="fast")
            # A config that is not the ring the links were placed by.
            with harness.Server(BINARY, db=cluster.db, names=NAMES[:3],
                                ports=[cluster.ports[n] for n in NAMES[:3]]) as server:
                seed(server.port, 60, "refuse")
            wrong = cluster.config("wrong", {"5432": 2, "5433": 1, "5434": 1})
            refused = reshard("--config", wrong, "--to", four)
            self.assertEqual(refused.returncode, 1)
            self.assertIn("that the ring of --config places on other shards", refused.stderr)
            self.assertEqual(cluster.leftovers(), [])
        finally:
            cluster.drop()


if __name__ == "__main__":
    BINARY = sys.argv.pop(1)
    unittest.main(verbosity=2)
