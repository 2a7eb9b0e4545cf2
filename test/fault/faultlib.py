"""Shared pieces of the fault tests: the suite's shards, a load generator, checks and verification.

scripts/test starts the shards and exports SHARDURL_TEST_PORTS and SHARDURL_TEST_CLUSTER_DIR; the
tests crash and restart those shards with scripts/cluster and always leave them running.
"""
import base64
import errno
import hashlib
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

import harness  # noqa: E402
from uhashring import HashRing  # noqa: E402

REPO = harness.REPO
CLUSTER = os.path.join(REPO, "scripts", "cluster")
NAMES = harness.TUTORIAL_NAMES
RING = HashRing(nodes=NAMES)

# The deadlines of the spec, written out so the numbers the tests assert are the ones configured.
SETTINGS = {
    "timeouts": {"connect_ms": 1000, "query_ms": 2000, "pool_wait_ms": 1000, "shutdown_ms": 10000},
    "health": {"interval_up_ms": 1000, "interval_down_ms": 200},
    "pool": {"size": 8, "max_waiters": 256},
}


def settings_for(binary, checks, label):
    """SETTINGS if the binary's config parser takes them, else {} (its defaults are the same
    numbers). A refusal is a failed check: the spec makes these deadlines configurable."""
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"shards": [{"name": n, "conninfo": "host=127.0.0.1 port=1"} for n in NAMES],
                   **SETTINGS}, f)
    try:
        out = subprocess.run([binary, "ring", "--config", f.name], input="", capture_output=True,
                             text=True, timeout=30)
    finally:
        os.unlink(f.name)
    ok = checks.check(f"{label}: config takes timeouts, pool and health", out.returncode == 0,
                      out.stderr.strip() + (" (going on with the built-in defaults, which are "
                                            "the same numbers)" if out.returncode else ""))
    return SETTINGS if ok else {}


def ports():
    return harness.shard_ports()


def cluster_dir():
    d = os.environ.get("SHARDURL_TEST_CLUSTER_DIR")
    if not d:
        raise SystemExit("SHARDURL_TEST_CLUSTER_DIR is not set: run this through scripts/test, "
                         "which starts the PostgreSQL shards")
    return d


def port_of(name):
    return ports()[NAMES.index(name)]


def expected_id(url, length=7):
    return base64.urlsafe_b64encode(hashlib.sha256(url.encode()).digest()).decode()[:length]


def owner(url_id):
    return RING.get_node(url_id)


def server_binary():
    if len(sys.argv) < 2:
        raise SystemExit(f"usage: {sys.argv[0]} SHARDURL_BINARY")
    return sys.argv[1]


# ---- the cluster ----

def cluster(*args, timeout=120, directory=None):
    out = subprocess.run([CLUSTER, *args, "--dir", directory or cluster_dir()],
                         capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"scripts/cluster {' '.join(args)}: exit {out.returncode}\n"
                           f"{out.stdout}{out.stderr}")
    return out.stdout


def stop_shard(port, mode="immediate"):
    cluster("stop-shard", "--port", str(port), "--mode", mode)


def start_shard(port, directory=None):
    cluster("start-shard", "--port", str(port), directory=directory)


def shard_is_up(port):
    try:
        harness.psql(port, "SELECT 1")
        return True
    except Exception:
        return False


def wrap_up(checks, logs):
    """Leaves every shard running whatever happened, then reports and exits (the tests' last step)."""
    try:
        restore_shards()
    except Exception:
        checks.crashed("restoring the shards")
    checks.finish(logs)


def restore_shards():
    """Starts every suite shard that is not running (used in finally blocks)."""
    for port in ports():
        if not shard_is_up(port):
            print(f"restoring shard {port}", flush=True)
            start_shard(port)


# ---- checks ----

class Checks:
    def __init__(self, test):
        self.test = test
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"  ok    {name}" + (f": {detail}" if detail else ""), flush=True)
        else:
            self.failed += 1
            print(f"  FAIL  {name}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    def crashed(self, what):
        self.failed += 1
        print(f"  FAIL  {what} raised:\n{traceback.format_exc()}", flush=True)

    def finish(self, server_logs=()):
        if self.failed:
            for label, text in server_logs:
                tail = "\n".join(text.splitlines()[-60:])
                print(f"--- {label} (last 60 lines) ---\n{tail}", flush=True)
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(1 if self.failed else 0)


# ---- HTTP ----

def conn_to(port, timeout=15):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)


class Rec:
    __slots__ = ("kind", "start", "end", "status", "shard", "url", "url_id", "error", "fresh",
                 "body", "thread")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    @property
    def acked(self):
        return self.kind == "POST" and self.status in (200, 201)

    @property
    def latency(self):
        return self.end - self.start


def classify(exc):
    """A short name for a transport failure."""
    if isinstance(exc, http.client.RemoteDisconnected):
        return "closed"  # the server closed the connection cleanly without answering
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, BrokenPipeError):
        return "broken_pipe"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno == errno.ECONNRESET:
        return "reset"
    return type(exc).__name__


def one_request(conn, kind, url=None, url_id=None, thread=0):
    """Sends one request on `conn` (keep-alive) and returns its Rec. Never raises."""
    fresh = conn.sock is None
    if kind == "POST":
        path = "/urls?full_url=" + urllib.parse.quote(url, safe=":/")
        url_id = expected_id(url)
    else:
        path = "/urls/" + urllib.parse.quote(url_id, safe="")
    rec = Rec(kind=kind, url=url, url_id=url_id, shard=owner(url_id), fresh=fresh, thread=thread)
    rec.start = time.monotonic()
    try:
        conn.request(kind, path)
        resp = conn.getresponse()
        data = resp.read()
        rec.end = time.monotonic()
        rec.status = resp.status
        try:
            rec.body = json.loads(data)
        except ValueError:
            rec.body = None
            rec.error = "invalid JSON body"
        if rec.status in (200, 201) and isinstance(rec.body, dict):
            got = rec.body.get("url_id")
            if kind == "POST" and got:
                rec.url_id = got
                rec.shard = owner(got)
            server = rec.body.get("server") or {}
            if server.get("nodename") and server["nodename"] != rec.shard:
                rec.error = f"server.nodename {server['nodename']} != ring owner {rec.shard}"
            if rec.body.get("url") != url and kind == "POST":
                rec.error = f"answered url {rec.body.get('url')!r}"
        if resp.will_close:
            conn.close()
    except Exception as e:  # noqa: BLE001 - every outcome is data here
        rec.end = time.monotonic()
        rec.error = classify(e)
        conn.close()
    return rec


class Load:
    """Threads, each with one keep-alive connection, issuing mixed POSTs of unique URLs and GETs
    of ids already created (spread over the shards). Every request is recorded."""

    def __init__(self, port, threads=6, post_share=0.5, pause=0.008, seed_ids=(), tag=None,
                 max_requests=200_000):
        self.port = port
        self.threads = threads
        self.post_share = post_share
        self.pause = pause
        self.tag = tag or uuid.uuid4().hex[:12]
        self.records = []
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.by_shard = {n: [] for n in NAMES}  # ids known to exist, per shard
        for url_id in seed_ids:
            self.by_shard[owner(url_id)].append(url_id)
        self.max_requests = max_requests
        self._threads = []

    def url_prefix(self):
        return f"https://fault.test/{self.tag}/"

    def _worker(self, n):
        rnd = random.Random(n)
        conn = conn_to(self.port)
        i = 0
        try:
            while not self.stop_event.is_set() and len(self.records) < self.max_requests:
                i += 1
                known = [s for s in NAMES if self.by_shard[s]]
                if rnd.random() < self.post_share or not known:
                    rec = one_request(conn, "POST", url=f"{self.url_prefix()}{n}/{i}", thread=n)
                else:
                    shard = known[i % len(known)]  # every shard's keys keep getting traffic
                    with self.lock:
                        url_id = rnd.choice(self.by_shard[shard])
                    rec = one_request(conn, "GET", url_id=url_id, thread=n)
                with self.lock:
                    self.records.append(rec)
                    if rec.acked:
                        self.by_shard[rec.shard].append(rec.url_id)
                if rec.error in ("refused",):
                    time.sleep(0.02)
                if self.pause:
                    time.sleep(self.pause)
        finally:
            conn.close()

    def start(self):
        for n in range(self.threads):
            t = threading.Thread(target=self._worker, args=(n,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=30)
        return self.records

    def acked(self):
        with self.lock:
            return [r for r in self.records if r.acked]


class Poller:
    """Polls /healthz and /readyz every `every` seconds on its own connection."""

    def __init__(self, port, every=0.05):
        self.port = port
        self.every = every
        self.health = []  # (time, status or error)
        self.ready = []  # (time, status, body)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _get(self, conn, path):
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            data = resp.read()
            try:
                body = json.loads(data)
            except ValueError:
                body = None
            return resp.status, body
        except Exception as e:  # noqa: BLE001
            conn.close()
            return classify(e), None

    def _run(self):
        conn = conn_to(self.port, timeout=5)
        try:
            while not self.stop_event.is_set():
                t = time.monotonic()
                self.health.append((t, self._get(conn, "/healthz")[0]))
                status, body = self._get(conn, "/readyz")
                self.ready.append((time.monotonic(), status, body))
                time.sleep(self.every)
        finally:
            conn.close()

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(timeout=10)

    def first_ready_after(self, t):
        for when, status, _ in self.ready:
            if when >= t and status == 200:
                return when
        return None


def ids_owned_by(name, count=20):
    """Made-up ids (that nobody created) which the ring places on shard `name`."""
    out, i = [], 0
    while len(out) < count and i < 100_000:
        i += 1
        if owner(f"nx{i}") == name:
            out.append(f"nx{i}")
    return out


def seed(port, per_shard=20, tag=None):
    """Creates links until every shard owns at least `per_shard`; returns their ids."""
    tag = tag or uuid.uuid4().hex[:12]
    conn = conn_to(port)
    ids = {n: [] for n in NAMES}
    i = 0
    try:
        while min(len(v) for v in ids.values()) < per_shard and i < per_shard * 20:
            i += 1
            rec = one_request(conn, "POST", url=f"https://fault.test/seed/{tag}/{i}")
            if not rec.acked:
                raise RuntimeError(f"seeding failed: {rec.status} {rec.error} {rec.body}")
            ids[rec.shard].append(rec.url_id)
    finally:
        conn.close()
    return [x for v in ids.values() for x in v]


# ---- verification ----

def rows_on_shard(port, url_prefix):
    """(url_id, url) of every row whose url starts with url_prefix, on one shard."""
    pattern = url_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    out = harness.psql(port, "SELECT url_id || E'\\t' || url FROM url_table WHERE url LIKE '"
                       + pattern.replace("'", "''") + "'")
    return [tuple(line.split("\t", 1)) for line in out.splitlines() if line]


def verify_durable(server_port, records, url_prefix, checks, label, shard_ports=None):
    """Every acknowledged create is on its owning shard exactly once and readable via GET; no row
    of this run is duplicated, misplaced or half-written. Returns the number of acked creates lost.
    `shard_ports` maps a shard's name to the port psql reads it on (default: the suite's shards)."""
    acked = {}
    for r in records:
        if r.acked:
            acked[r.url] = r.url_id
    rows = []
    for name in NAMES:
        for url_id, url in rows_on_shard((shard_ports or {}).get(name) or port_of(name), url_prefix):
            rows.append((name, url_id, url))
    by_url = {}
    for name, url_id, url in rows:
        by_url.setdefault(url, []).append((name, url_id))
    lost = [u for u, i in acked.items() if (owner(i), i) not in by_url.get(u, [])]
    dup = {u: v for u, v in by_url.items() if len(v) > 1}
    misplaced = [(n, i, u) for n, i, u in rows if owner(i) != n]
    bad_id = [(n, i, u) for n, i, u in rows if not expected_id(u, 43).startswith(i) or len(i) < 7]
    ids = [i for _, i, _ in rows]
    dup_ids = len(ids) - len(set(ids))
    checks.check(f"{label}: every acknowledged create is on its shard (psql)", not lost,
                 f"acked {len(acked)}, lost {len(lost)} {lost[:5]}")
    checks.check(f"{label}: no URL stored twice, no url_id twice, no misplaced or odd row",
                 not dup and not misplaced and not bad_id and dup_ids == 0,
                 f"rows {len(rows)}, dup urls {list(dup.items())[:3]}, dup ids {dup_ids}, "
                 f"misplaced {misplaced[:3]}, bad ids {bad_id[:3]}")
    unacked_present = len([u for u in by_url if u not in acked])
    # And through the service.
    items = list(acked.items())
    bad = []
    lock = threading.Lock()

    def reader(chunk):
        conn = conn_to(server_port)
        try:
            for url, url_id in chunk:
                rec = one_request(conn, "GET", url_id=url_id)
                if rec.status != 200 or not rec.body or rec.body.get("url") != url:
                    with lock:
                        bad.append((url_id, rec.status, rec.error))
        finally:
            conn.close()

    workers = [threading.Thread(target=reader, args=(items[k::4],)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    checks.check(f"{label}: every acknowledged create reads back via GET", not bad,
                 f"{len(items)} read, {len(bad)} bad {bad[:5]}")
    return len(lost), unacked_present


def pct(values, p):
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def fmt_counts(records):
    out = {}
    for r in records:
        key = f"{r.kind} {r.status if r.status is not None else r.error}"
        out[key] = out.get(key, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(out.items()))


# ---- one shard fails under mixed load, then comes back ----

class Outage:
    """Runs mixed load against `server`, makes shard `victim` fail with fail() for `during` seconds,
    recovers it with recover(), keeps the load going `post` seconds, and checks the spec's numbers.
    Prints the measurements and returns them as a dict."""

    def __init__(self, name, server, victim, fail, recover, pre=3.0, during=4.0, post=5.0,
                 threads=6, seed_ids=(), direct_port=None):
        self.name, self.server, self.victim = name, server, victim
        # When set, a psql loop on this port finds the moment the shard itself answers again, and
        # recovery is measured from then (scripts/cluster start-shard returns only after initdb/).
        self.direct_port = direct_port
        self.t_direct = None
        self.fail, self.recover = fail, recover
        self.pre, self.during, self.post = pre, during, post
        self.load = Load(server.port, threads=threads, seed_ids=seed_ids)
        self.poller = Poller(server.port)
        self.t_fail = self.t_recover_begin = self.t_recovered = None

    def run(self):
        self.load.start()
        self.poller.start()
        try:
            time.sleep(self.pre)
            self.t_fail = time.monotonic()
            self.fail()
            time.sleep(self.during)
            self.t_recover_begin = time.monotonic()
            watcher = None
            if self.direct_port:
                watcher = threading.Thread(target=self._watch_direct, daemon=True)
                watcher.start()
            self.recover()
            self.t_recovered = time.monotonic()
            time.sleep(self.post)
            if watcher:
                watcher.join(timeout=20)
        finally:
            self.load.stop()
            self.poller.stop()
        return self.load.records

    def _watch_direct(self):
        give_up = time.monotonic() + 20
        while time.monotonic() < give_up:
            out = subprocess.run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(self.direct_port),
                                  "-U", "postgres", "-d", "postgres", "-c", "SELECT 1"],
                                 capture_output=True, text=True, timeout=10,
                                 env={**os.environ, "PGCONNECT_TIMEOUT": "2"})
            if out.returncode == 0:
                self.t_direct = time.monotonic()
                return
            time.sleep(0.02)

    def check(self, checks):
        recs = self.load.records
        name, victim = self.name, self.victim
        checks.check(f"{name}: the load ran", len(recs) > 200 and self.load.acked(),
                     f"{len(recs)} requests: {fmt_counts(recs)}")
        healthy = [r for r in recs if r.shard != victim]
        bad_healthy = [r for r in healthy if r.status not in (200, 201) or r.error]
        h_get = [r.latency for r in healthy if r.kind == "GET"]
        h_post = [r.latency for r in healthy if r.kind == "POST"]
        worst_get = max(h_get, default=0.0)
        checks.check(f"{name}: every request to a healthy shard answered 200", not bad_healthy,
                     f"{len(healthy)} requests, bad {[(r.kind, r.shard, r.status, r.error, round(r.start - self.t_fail, 3)) for r in bad_healthy[:5]]}")
        checks.check(f"{name}: every healthy-shard GET within 2 s", worst_get <= 2.0,
                     f"worst {worst_get:.3f} s, p99 {pct(h_get, 99):.3f} s over {len(h_get)}")
        checks.check(f"{name}: every healthy-shard POST within 2 s", max(h_post, default=0) <= 2.0,
                     f"worst {max(h_post, default=0):.3f} s, p99 {pct(h_post, 99):.3f} s")
        window = [r for r in recs if r.shard == victim and r.start >= self.t_fail - 0.5]
        unanswered = [r for r in window if r.status is None]
        slow = [r for r in window if r.latency > 10.0]
        checks.check(f"{name}: every request to the failed shard's keys answered within 10 s",
                     not unanswered and not slow,
                     f"{len(window)} requests ({fmt_counts(window)}), worst "
                     f"{max((r.latency for r in window), default=0):.3f} s, unanswered "
                     f"{[(r.kind, r.error) for r in unanswered[:5]]}")
        failures = [r for r in window if r.status in (503, 504)]
        bodies_ok = all(isinstance(r.body, dict) and r.body.get("detail") in (
            f"shard {victim} unavailable", f"shard {victim} timed out") for r in failures)
        checks.check(f"{name}: the failed shard's keys got 503/504 naming it", failures and bodies_ok,
                     f"{len(failures)} failures, e.g. {failures[0].body if failures else None}")
        longest = max((r.latency for r in recs), default=0.0)
        checks.check(f"{name}: no request over 12 s, no transport error",
                     longest <= 12.0 and not [r for r in recs if r.error],
                     f"longest {longest:.3f} s, errors {[r.error for r in recs if r.error][:5]}")
        # Detection and fail-fast: /readyz names the shard; requests that start while it is known
        # down (after /readyz said so, before recovery) answer well under 100 ms.
        down_polls = [(t, b) for t, s, b in self.poller.ready
                      if self.t_fail <= t <= self.t_recover_begin and s == 503]
        named = all(isinstance(b, dict) and b.get("detail") == f"shards not ready: {victim}"
                    and b["shards"][victim]["state"] == "down" for _, b in down_polls)
        t_down = down_polls[0][0] if down_polls else None
        checks.check(f"{name}: /readyz 503 naming {victim} while it is down", down_polls and named,
                     f"detected after {t_down - self.t_fail:.3f} s, e.g. {down_polls[0][1]}"
                     if down_polls else "never 503")
        fast = [r.latency for r in window
                if t_down and t_down + 0.3 <= r.start and r.end <= self.t_recover_begin]
        p99_fast = pct(fast, 99)
        checks.check(f"{name}: while known down, its requests fail fast (p99 < 100 ms)",
                     fast and p99_fast < 0.1,
                     f"p99 {p99_fast * 1000:.1f} ms, max {max(fast, default=0) * 1000:.1f} ms over "
                     f"{len(fast)}")
        # Recovery.
        served = [r for r in recs if r.shard == victim and r.status in (200, 201)
                  and r.start >= self.t_recover_begin]
        first = min((r.end for r in served), default=None)
        t_back = self.t_direct or self.t_recovered
        since = "the shard answered psql" if self.t_direct else "the recovery step returned"
        recovery = (first - t_back) if first else None
        checks.check(f"{name}: the shard's keys serve 200 again within 5 s of its restart",
                     recovery is not None and recovery <= 5.0,
                     f"first 200 {recovery:.3f} s after {since} "
                     f"({t_back - self.t_recover_begin:.3f} s into the recovery step, which took "
                     f"{self.t_recovered - self.t_recover_begin:.3f} s)"
                     if recovery is not None else "never")
        late = [r for r in recs if r.shard == victim and r.start >= self.t_recovered + 5.0
                and r.status not in (200, 201)]
        checks.check(f"{name}: after that, every request to its keys succeeds", not late,
                     f"{[(r.kind, r.status, r.error) for r in late[:5]]}")
        ready_at = self.poller.first_ready_after(self.t_recover_begin)
        ready_after = (ready_at - t_back) if ready_at else None
        checks.check(f"{name}: /readyz 200 again within 5 s of the restart",
                     ready_after is not None and ready_after <= 5.0,
                     f"{ready_after:.3f} s" if ready_after is not None else "never")
        h = [s for _, s in self.poller.health]
        checks.check(f"{name}: /healthz 200 throughout", h and all(s == 200 for s in h),
                     f"{len(h)} polls, not 200: {[s for s in h if s != 200][:5]}")
        return {"recovery": recovery, "ready_after": ready_after, "worst_healthy_get": worst_get,
                "detect": (t_down - self.t_fail) if t_down else None, "fast_p99": p99_fast,
                "requests": len(recs)}
