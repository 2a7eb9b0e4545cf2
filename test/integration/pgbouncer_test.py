#!/usr/bin/python3
"""shardurl through Debian's real PgBouncer, in session and in transaction pooling mode, with
PgBouncer's default settings (see pgbouncer.py for the few lines its pgbouncer.ini must set).

For each PgBouncer mode, shardurl runs twice: once with every shard's "pool_mode" set to match,
once with pool_mode left unset (an operator who put PgBouncer in front without telling shardurl:
shardurl must notice transaction pooling by itself). Where pool_mode is "transaction", each shard
also gets "listen_conninfo" straight to its PostgreSQL, since LISTEN cannot work through
transaction pooling. Every run puts a concurrent mixed load on the real binary (creates of new
URLs, the same URLs again, JSON creates with and without aliases, GET /urls/{id}, redirects,
keyed DELETEs) and checks:

  - no answer is a 5xx, no request fails at the transport level, every answer is the one the API
    promises for that request (a create of a new URL 201, a read of a live link 200, ...);
  - every create answered 200/201 and not deleted reads back through shardurl and is on its owning
    shard (psql on the shard's own port); every link whose DELETE answered 204 is gone from both;
  - shardurl's log never says "internal error", and for every 5xx that did happen it names the
    shard, the SQLSTATE and the message (so a failure of this test explains itself);
  - PgBouncer carried the traffic, in the mode the run meant (its console: SHOW CONFIG, SHOW STATS);
  - with pool_mode "transaction", shardurl left nothing on PgBouncer's server connections that
    their next client would inherit: no prepared statement, no SET, no LISTEN.

With PgBouncer's defaults the binary shardurl had before pool_mode existed fails this test at once
(PgBouncer refuses its startup parameter `options`: every request 503); with the refusal worked
around (SHARDURL_PGBOUNCER_SETTINGS below), transaction pooling gives it hundreds of 500s
(SQLSTATE 26000 `prepared statement "shardurl_insert" does not exist`) that it never logs.

Usage (scripts/test runs it through ctest, with the suite's shards):
    /usr/bin/python3 test/integration/pgbouncer_test.py BINARY

Environment:
    SHARDURL_TEST_PORTS          the shards' ports (scripts/test exports it)
    SHARDURL_TEST_PORT_RANGE     e.g. 27440-27499: take PgBouncer's and shardurl's ports from there
    SHARDURL_PGBOUNCER_SECONDS   load per run (default 4)
    SHARDURL_PGBOUNCER_SETTINGS  extra pgbouncer.ini lines, ';'-separated, for diagnosis only: e.g.
                                 "ignore_startup_parameters=options" gets an old binary past
                                 PgBouncer's refusal of the startup parameter to what fails next
"""
import fcntl
import http.client
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "fault"))

import faultlib as F  # noqa: E402
import harness  # noqa: E402
import pgbouncer  # noqa: E402

KEY = "pgbouncer-test-key-0123456789"
NAMES = harness.TUTORIAL_NAMES
THREADS = 32
SECONDS = float(os.environ.get("SHARDURL_PGBOUNCER_SECONDS", "4"))
# Several sessions per shard, as an operator fronting PgBouncer would configure them: PgBouncer
# then multiplexes several clients over several server connections, which is where session state
# (SQL PREPARE) goes missing. Two workers: the same on every machine. That is 2 x (4 + 1) = 10
# sessions per shard, within PgBouncer's default_pool_size of 20: in session mode each holds a
# server connection for good, and an 11th beyond the pool would wait (query_wait_timeout, 120 s).
SHARDURL_SETTINGS = {"workers": 2, "pool": {"size": 4}, "api_keys": [KEY]}


def db_name(shard):
    return f"shard{shard}"


# ---- shardurl ----

class Shardurl:
    """The real binary with a config of our own; stdout and stderr go to one temporary file."""

    def __init__(self, binary, shards):
        self.port = pgbouncer.free_port()
        config = {"listen": f"127.0.0.1:{self.port}", "shards": shards, **SHARDURL_SETTINGS}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(config, f)
            self.config_file = f.name
        self.log = tempfile.TemporaryFile()
        # O_APPEND, so that reading the log (seek) never makes the server overwrite it.
        fcntl.fcntl(self.log.fileno(), fcntl.F_SETFL,
                    fcntl.fcntl(self.log.fileno(), fcntl.F_GETFL) | os.O_APPEND)
        self.proc = subprocess.Popen([binary, "serve", "--config", self.config_file],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()
            if self.proc.poll() is not None or time.monotonic() > deadline:
                out = self.output()
                self.stop()
                raise RuntimeError(f"shardurl did not start (exit {self.proc.returncode}):\n{out}")
            time.sleep(0.05)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.path.exists(self.config_file):
            os.unlink(self.config_file)
        return self.proc.returncode


# ---- the load ----

class Answer:
    __slots__ = ("op", "status", "body", "headers", "error", "url", "url_id", "expect")

    def __init__(self, op, url=None, url_id=None, expect=()):
        self.op, self.url, self.url_id, self.expect = op, url, url_id, expect
        self.status = self.body = self.headers = self.error = None

    def describe(self):
        what = self.status if self.status is not None else self.error
        return f"{self.op} {self.url_id or self.url}: {what} {self.body if self.body else ''}"


class Client:
    """One keep-alive HTTP connection, reopened whenever the server closes it."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def call(self, answer, method, path, body=None, headers=None):
        hdrs = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            self.conn.request(method, path, body=payload, headers=hdrs)
            resp = self.conn.getresponse()
            data = resp.read()
            answer.status = resp.status
            answer.headers = dict(resp.getheaders())
            try:
                answer.body = json.loads(data) if data else None
            except ValueError:
                answer.body = data[:200]
            if resp.will_close:
                self.close()
        except Exception as e:  # noqa: BLE001 - a transport failure is a result here
            answer.error = F.classify(e)
            self.close()
        return answer

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Load:
    """THREADS threads for `seconds`, each with its own links (so every expected answer is known):
    it creates links four ways, creates them again, reads them, follows them, deletes some."""

    def __init__(self, port, seconds, tag):
        self.port, self.seconds, self.tag = port, seconds, tag
        self.answers = []
        self.live = {}      # url_id -> url: created (200/201) and not deleted
        self.deleted = {}   # url_id -> url: DELETE answered 204
        self.lock = threading.Lock()

    def run(self):
        stop_at = time.monotonic() + self.seconds
        threads = [threading.Thread(target=self._worker, args=(n, stop_at), daemon=True)
                   for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=self.seconds + 60)
        return self

    def _worker(self, n, stop_at):
        rnd = random.Random(f"{self.tag}/{n}")
        client = Client(self.port)
        mine = {}  # url_id -> (url, how it was created: "query", "json" or "alias")
        answers = []
        i = 0
        try:
            while time.monotonic() < stop_at:
                i += 1
                url = f"https://pgbouncer.test/{self.tag}/{n}/{i}"
                roll = rnd.random()
                if not mine or roll < 0.25:
                    a = self._create(client, "query", url)
                elif roll < 0.35:
                    a = self._create(client, "json", url)
                elif roll < 0.40:
                    a = self._create(client, "alias", url, alias=f"pgb-{uuid.uuid4().hex[:16]}")
                else:
                    url_id = rnd.choice(list(mine))
                    url, how = mine[url_id]
                    if roll < 0.55:
                        a = self._create(client, how, url, alias=url_id if how == "alias" else None,
                                         again=url_id)
                    elif roll < 0.75:
                        a = Answer("read", url, url_id, expect=(200,))
                        client.call(a, "GET", "/urls/" + urllib.parse.quote(url_id, safe=""))
                        if a.status == 200 and (a.body or {}).get("url") != url:
                            a.error = f"read answered url {(a.body or {}).get('url')!r}"
                    elif roll < 0.90:
                        a = Answer("redirect", url, url_id, expect=(302,))
                        client.call(a, "GET", "/" + urllib.parse.quote(url_id, safe=""))
                        if a.status == 302 and (a.headers or {}).get("Location") != url:
                            a.error = f"Location {(a.headers or {}).get('Location')!r}"
                    else:
                        a = Answer("delete", url, url_id, expect=(204,))
                        client.call(a, "DELETE", "/urls/" + urllib.parse.quote(url_id, safe=""),
                                    headers={"X-Api-Key": KEY})
                        del mine[url_id]  # whatever the answer: its state is only known on 204
                        if a.status == 204:
                            with self.lock:
                                self.deleted[url_id] = url
                if a.op.startswith("create") and a.status in (200, 201) and a.url_id:
                    mine[a.url_id] = (a.url, a.op.split()[1])
                answers.append(a)
        finally:
            client.close()
            with self.lock:
                self.answers.extend(answers)
                for url_id, (url, _) in mine.items():
                    self.live[url_id] = url

    @staticmethod
    def _create(client, how, url, alias=None, again=None):
        """how: "query" (the tutorial's form, always 200), "json" (201 new, 200 again) or "alias"."""
        if how == "query":
            a = Answer(f"create query{' again' if again else ''}", url, expect=(200,))
            client.call(a, "POST", "/urls?full_url=" + urllib.parse.quote(url, safe=":/"))
        else:
            a = Answer(f"create {how}{' again' if again else ''}", url,
                       expect=(200,) if again else (201,))
            body = {"url": url} if how == "json" else {"url": url, "alias": alias}
            client.call(a, "POST", "/urls", body=body)
        if a.status in (200, 201):
            got = (a.body or {}).get("url_id") if isinstance(a.body, dict) else None
            a.url_id = got
            wanted = again or alias or F.expected_id(url)
            if got != wanted or (a.body or {}).get("url") != url:
                a.error = f"answered {a.body!r}, expected url_id {wanted!r}"
        return a


# ---- checks ----

SQLSTATE = re.compile(r"(?:\[|\bSQLSTATE[ :=]*)([0-9A-Z]{5})\b\]?")


def explains(log_lines, shard, detail_hint=None):
    """A log line that names `shard` (any shard when None), carries a SQLSTATE and a message."""
    for line in log_lines:
        if shard is not None and not re.search(rf"\b{re.escape(shard)}\b", line):
            continue
        if shard is None and not any(re.search(rf"\b{n}\b", line) for n in NAMES):
            continue
        m = SQLSTATE.search(line)
        if m and re.search(r"[a-z]{3,}", line[m.end():]):
            return line
    return None


def rows_by_id(ids_by_shard):
    """{url_id: url} for the given live ids (deleted ones are tombstones, left out), read on each
    owning shard's own port with psql."""
    found = {}
    ports = dict(zip(NAMES, harness.shard_ports()))
    for shard, ids in ids_by_shard.items():
        for k in range(0, len(ids), 500):
            chunk = ids[k:k + 500]
            array = ",".join("'" + i.replace("'", "''") + "'" for i in chunk)
            out = harness.psql(ports[shard], "SELECT url_id || E'\\t' || url FROM url_table "
                                             f"WHERE url_id = ANY(ARRAY[{array}]::text[]) AND deleted_at IS NULL")
            for line in out.splitlines():
                url_id, url = line.split("\t", 1)
                found[url_id] = url
    return found


def by_owner(ids):
    out = {n: [] for n in NAMES}
    for i in ids:
        out[F.owner(i)].append(i)
    return out


def read_back(port, items):
    """GET /urls/{id} for every (id, url) through shardurl, 8 connections; returns the Answers."""
    answers, lock = [], threading.Lock()

    def reader(chunk):
        client = Client(port)
        mine = []
        failures = 0
        for url_id, url in chunk:
            a = Answer("verify", url, url_id)
            if failures >= 3:  # a hung server: do not wait out 15 s per link
                a.error = "not read: the server stopped answering"
            else:
                client.call(a, "GET", "/urls/" + urllib.parse.quote(url_id, safe=""))
                failures += a.status is None
            mine.append(a)
        client.close()
        with lock:
            answers.extend(mine)

    threads = [threading.Thread(target=reader, args=(items[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return answers


def counts(answers):
    out = {}
    for a in answers:
        key = f"{a.op} {a.status if a.status is not None else a.error}"
        out[key] = out.get(key, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(out.items()))


def run_case(checks, binary, bouncer, label, shard_pool_mode):
    """One shardurl config against `bouncer` under load. shard_pool_mode: None leaves it unset."""
    ports = harness.shard_ports()
    shards = []
    for name, port in zip(NAMES, ports):
        shard = {"name": name, "conninfo": bouncer.conninfo(db_name(name))}
        if shard_pool_mode is not None:
            shard["pool_mode"] = shard_pool_mode
        if shard_pool_mode == "transaction":
            shard["listen_conninfo"] = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        shards.append(shard)
    stats_before = {row["database"]: int(row["total_xact_count"])
                    for row in bouncer.admin("SHOW STATS")}
    started = time.monotonic()
    answers, verify = [], []
    try:
        server = Shardurl(binary, shards)
    except RuntimeError as e:
        checks.check(f"{label}: shardurl starts with this config", False, str(e).strip()[-600:])
        return None
    try:
        load = Load(server.port, SECONDS, uuid.uuid4().hex[:10]).run()
        answers = load.answers
        checks.check(f"{label}: the load ran", len(answers) >= 300,
                     f"{len(answers)} requests in {SECONDS:g} s over {THREADS} connections: "
                     f"{counts(answers)}")
        live = sorted(load.live.items())
        deleted = sorted(load.deleted.items())
        verify = read_back(server.port, live + deleted)
    finally:
        code = server.stop()
        log = server.output()
    everything = answers + verify
    fivexx = [a for a in everything if a.status is not None and a.status >= 500]
    checks.check(f"{label}: no 5xx", not fivexx,
                 f"{len(fivexx)} of {len(everything)}: "
                 + "; ".join(sorted({f"{a.status} {a.body}" for a in fivexx})[:6]))
    transport = [a for a in everything if a.status is None]
    checks.check(f"{label}: no transport failures", not transport,
                 f"{len(transport)}: {[a.describe() for a in transport[:5]]}")
    wrong = [a for a in answers if a.status is not None and a.status < 500
             and (a.status not in a.expect or a.error)]
    checks.check(f"{label}: every answer is the one the API promises", not wrong,
                 f"{len(wrong)} wrong: {[a.describe() + ' ' + str(a.error or '') for a in wrong[:5]]}")
    # Read back through shardurl, then on the shards themselves.
    bad_live = [a for a in verify if a.url_id in load.live
                and (a.status != 200 or (a.body or {}).get("url") != a.url)]
    bad_gone = [a for a in verify if a.url_id in load.deleted and a.status != 410]
    checks.check(f"{label}: every link created (200/201) and not deleted reads back via GET",
                 live and not bad_live,
                 f"{len(live)} links, {len(bad_live)} bad: {[a.describe() for a in bad_live[:5]]}")
    checks.check(f"{label}: every link whose DELETE answered 204 is 410 Gone via GET",
                 deleted and not bad_gone,
                 f"{len(deleted)} deleted, {len(bad_gone)} bad: "
                 f"{[a.describe() for a in bad_gone[:5]]}")
    stored = rows_by_id(by_owner([i for i, _ in live] + [i for i, _ in deleted]))
    missing = [(i, u) for i, u in live if stored.get(i) != u]
    resurrected = [i for i, _ in deleted if i in stored]
    checks.check(f"{label}: every link created and not deleted is on its owning shard (psql)",
                 not missing, f"{len(live)} links, {len(missing)} missing: {missing[:5]}")
    checks.check(f"{label}: every link deleted (204) is a tombstone on its shard (psql)",
                 not resurrected, f"{len(deleted)} deleted, {len(resurrected)} still there: "
                 f"{resurrected[:5]}")
    # The log: no "internal error"; every kind of 5xx explained (shard, SQLSTATE, message).
    lines = log.splitlines()
    internal = [line for line in lines if "internal error" in line]
    checks.check(f"{label}: shardurl's log never says \"internal error\"", not internal,
                 f"{len(internal)} lines, e.g. {internal[:2]}")
    unexplained = []
    for status, detail in sorted({(a.status, str((a.body or {}).get("detail")
                                                 if isinstance(a.body, dict) else a.body))
                                  for a in fivexx}):
        m = re.match(r"shard (\S+) ", detail)
        if not explains(lines, m.group(1) if m else None):
            unexplained.append(f"{status} {detail}")
    checks.check(f"{label}: shardurl's log names shard, SQLSTATE and message for every kind of "
                 f"5xx", not unexplained,
                 f"no such line for: {unexplained}; log lines that name a shard: "
                 f"{[line for line in lines if re.search(r'shard ', line)][:4]}"
                 if unexplained else f"{len(fivexx)} 5xx")
    # PgBouncer carried it, in the mode this run meant.
    stats = {row["database"]: int(row["total_xact_count"]) for row in bouncer.admin("SHOW STATS")}
    carried = {db_name(n): stats.get(db_name(n), 0) - stats_before.get(db_name(n), 0)
               for n in NAMES}
    mode = {row["key"]: row["value"] for row in bouncer.admin("SHOW CONFIG")}.get("pool_mode")
    checks.check(f"{label}: PgBouncer ({mode} mode) carried every shard's transactions",
                 mode == bouncer.pool_mode and all(v > 0 for v in carried.values()),
                 f"transactions per database: {carried}")
    checks.check(f"{label}: shardurl exits 0 on SIGTERM", code == 0, f"exit {code}")
    if shard_pool_mode == "transaction":
        check_no_session_state(checks, bouncer, label)
    elapsed = time.monotonic() - started
    print(f"{label}: {len(answers)} requests ({counts(answers)}); {len(fivexx)} 5xx; "
          f"{len(live)} live and {len(deleted)} deleted links verified; {elapsed:.1f} s",
          flush=True)
    return log


# What PgBouncer itself sets on a server to match its client (tracked startup parameters).
PGBOUNCER_TRACKED = ("application_name", "client_encoding", "DateStyle", "TimeZone",
                     "standard_conforming_strings")
INSPECT_SQL = """DO $$ /* MARKER */
DECLARE deadline timestamptz := clock_timestamp() + interval '10 s';
BEGIN
  -- Hold this server until TARGET servers have run this statement (a server keeps showing its
  -- last statement when idle, so the count only grows and every client sees it reach TARGET).
  WHILE (SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/* MARKER */%') < TARGET
        AND clock_timestamp() < deadline LOOP
    PERFORM pg_sleep(0.01);
    PERFORM pg_stat_clear_snapshot();  -- else pg_stat_activity stays as first read
  END LOOP;
  RAISE NOTICE 'inspected %', concat_ws(E'\t', pg_backend_pid(),
    (SELECT count(*) FROM pg_prepared_statements),
    coalesce((SELECT string_agg(name || '=' || setting, ',') FROM pg_settings
              WHERE source = 'session' AND name NOT IN (TRACKED)), ''),
    coalesce((SELECT string_agg(c, ',') FROM pg_listening_channels() c), ''), '.');
END $$"""


def server_sessions(bouncer, database):
    """Inspects every server connection PgBouncer holds for `database`. In each round, as many
    clients as it lists servers each run one statement that holds its server until all of them
    hold one, so PgBouncer hands each an idle server of its own; rounds repeat (at most three)
    for servers a round missed. Returns ({pid: (prepared statements, session settings, LISTEN
    channels)}, the server pids PgBouncer listed first, errors)."""

    def listed():
        return {r["remote_pid"] for r in bouncer.admin("SHOW SERVERS") if r["database"] == database}

    pids = listed()
    found, errors, lock = {}, [], threading.Lock()

    def inspect(sql):
        code, _, err = bouncer.psql(database, sql)
        m = re.search(r"NOTICE:  inspected (.*)", err)
        fields = m.group(1).split("\t") if m else []
        with lock:
            if code == 0 and len(fields) == 5:
                pid, prepared, settings, channels, _ = fields
                found[pid] = (int(prepared), settings, channels)
            else:
                errors.append(err)

    for _ in range(3):
        current = listed()
        if not current or (pids & current) <= set(found):
            break
        sql = (INSPECT_SQL.replace("MARKER", "inspect-" + uuid.uuid4().hex)
               .replace("TARGET", str(len(current)))
               .replace("TRACKED", ",".join(f"'{n}'" for n in PGBOUNCER_TRACKED)))
        threads = [threading.Thread(target=inspect, args=(sql,)) for _ in current]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    return found, pids & (listed() | set(found)), errors


def check_no_session_state(checks, bouncer, label):
    """pool_mode "transaction" promises that shardurl leaves nothing behind on PgBouncer's servers,
    which the next client of each server would inherit: no prepared statement, no SET, no LISTEN."""
    results = {}

    def one(name):
        results[name] = server_sessions(bouncer, db_name(name))

    threads = [threading.Thread(target=one, args=(name,)) for name in NAMES]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    for name in NAMES:
        found, pids, errors = results.get(name, ({}, set(), ["no result"]))
        dirty = {pid: state for pid, state in found.items() if state != (0, "", "")}
        checks.check(f"{label}: shard {name}: no session state left on PgBouncer's servers",
                     not dirty and not errors and pids <= set(found),
                     f"inspected {len(found)} servers (PgBouncer listed {len(pids)}); left "
                     f"behind (prepared statements, SET, LISTEN): {dirty}; errors {errors[:2]}; "
                     f"not reached {sorted(pids - set(found))}")


def extra_settings():
    text = os.environ.get("SHARDURL_PGBOUNCER_SETTINGS", "")
    out = {}
    for item in filter(None, (s.strip() for s in text.split(";"))):
        key, _, value = item.partition("=")
        out[key.strip()] = value.strip()
    return out


def main():
    binary = F.server_binary()
    checks = F.Checks("pgbouncer")
    logs = []
    started = time.monotonic()
    databases = {db_name(n): port for n, port in zip(NAMES, harness.shard_ports())}
    for mode in ("session", "transaction"):
        bouncer = pgbouncer.PgBouncer(databases, pool_mode=mode, settings=extra_settings())
        try:
            bouncer.start()
            changed = {r["key"]: r["value"] for r in bouncer.admin("SHOW CONFIG")
                       if r["value"] != r["default"]}
            print(f"--- PgBouncer {mode} mode on port {bouncer.port}; pgbouncer.ini:\n"
                  f"{bouncer.ini_text()}(SHOW CONFIG: not at their defaults: {changed})",
                  flush=True)
            for shard_mode in (mode, None):
                label = f"pgbouncer {mode}, shardurl pool_mode {shard_mode or 'unset'}"
                try:
                    log = run_case(checks, binary, bouncer, label, shard_mode)
                    if log is not None:
                        logs.append((f"shardurl log, {label}", log))
                except Exception:
                    checks.crashed(label)
        except Exception:
            checks.crashed(f"PgBouncer {mode} mode")
        finally:
            bouncer.stop()
            logs.append((f"PgBouncer log, {mode} mode",
                         "\n".join(line for line in bouncer.log().splitlines()
                                   if "login attempt" not in line and "client close request"
                                   not in line and "new connection to server" not in line)))
    print(f"pgbouncer test: {time.monotonic() - started:.1f} s", flush=True)
    checks.finish(logs)


if __name__ == "__main__":
    main()
