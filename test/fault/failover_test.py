#!/usr/bin/python3
"""Failover to a synchronous standby: shard "5433" is a primary with a streaming standby
(scripts/cluster start-standby --sync, made with pg_basebackup -R), given to shardurl as libpq
multi-host conninfo with target_session_attrs=read-write. Under a create-heavy load the primary's
postmaster is killed with SIGKILL and, PROMOTE_DELAY later, the standby is promoted
(scripts/cluster promote). shardurl keeps running throughout.

Checks: creates for 5433's keys succeed again within 5 s of the kill, and within 2 s of the end of
the standby's recovery (its log); every create answered 200
before, during and after is on the new primary exactly once and reads back; every request is
answered within shardurl's deadlines (pool_wait_ms + connect_ms + query_ms); the other shards'
keys are unaffected; /readyz names 5433 after the kill and is 200 again after the promotion.

It runs its own four PostgreSQL servers in a temporary directory, not the suite's shards: shards
5432 and 5434, the primary and its standby. Their ports: SHARDURL_FAILOVER_PORTS (four, comma-
separated), else the first four free from 26460 up.

Usage (scripts/test runs it through ctest): /usr/bin/python3 test/fault/failover_test.py BINARY
"""
import datetime
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import faultlib as F
import harness

VICTIM = "5433"
PROMOTE_DELAY = 0.5  # seconds between the kill and the promotion: a failover manager's reaction
PRE, POST = 3.0, 5.0  # seconds of load before the kill and after the promotion
WRITES_BACK_WITHIN = 5.0  # seconds from the kill to the first create that succeeds again


def free_ports(count, first=26460, last=26499):
    if os.environ.get("SHARDURL_FAILOVER_PORTS"):
        ports = [int(p) for p in os.environ["SHARDURL_FAILOVER_PORTS"].split(",")]
        if len(ports) != count:
            raise SystemExit(f"SHARDURL_FAILOVER_PORTS: {count} ports needed")
        return ports
    found = []
    for port in range(first, last + 1):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as PostgreSQL binds
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise SystemExit(f"fewer than {count} free ports in {first}-{last}")


def postmaster_pid(directory, port):
    with open(os.path.join(directory, str(port), "postmaster.pid")) as f:
        return int(f.readline())


def children_of(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def is_postgres(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return "(postgres)" in stat and stat.rsplit(")", 1)[1].split()[0] != "Z"


def promotion_in_log(directory, port, wall_kill):
    """(promote request received, recovery ended) in seconds after the kill, from the standby's
    own log (its timestamps are wall-clock UTC, to the millisecond); None where it says nothing.
    Writes are possible a moment after "archive recovery complete"; the postmaster's "ready to
    accept connections" comes later (after it has been taking writes for up to 0.2 s here)."""
    marks = {}
    with open(os.path.join(directory, str(port), "log"), errors="replace") as f:
        for line in f:
            for key, text in (("request", "received promote request"),
                              ("ready", "archive recovery complete")):
                if text in line and key not in marks:
                    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
                    when = stamp.replace(tzinfo=datetime.timezone.utc).timestamp()
                    marks[key] = when - wall_kill
    return marks.get("request"), marks.get("ready")


def kill_leftovers(directory, pids):
    """SIGKILLs what is left of our servers: the killed primary's orphaned backends (pids taken
    before the kill) and any postmaster of `directory` that scripts/cluster stop could not end."""
    for sub in os.listdir(directory) if os.path.isdir(directory) else ():
        try:
            pid = postmaster_pid(directory, sub)
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if os.path.join(directory, sub).encode() in f.read():
                    pids.append(pid)
        except (OSError, ValueError):
            pass
    for pid in pids:
        if is_postgres(pid):
            print(f"killing leftover postgres process {pid}", flush=True)
            os.kill(pid, signal.SIGKILL)


def main():
    binary = F.server_binary()
    checks = F.Checks("failover")
    logs = []
    server = None
    directory = tempfile.mkdtemp(prefix="shardurl-fault-failover.")
    orphans = []
    try:
        t_setup = time.monotonic()
        a, primary, standby, b = free_ports(4)
        F.cluster("start", "--ports", f"{a},{primary},{b}", directory=directory)
        print(F.cluster("start-standby", "--port", str(standby), "--primary-port", str(primary),
                        "--sync", directory=directory).strip(), flush=True)
        conninfo = dict(line.split("\t") for line in
                        F.cluster("conninfo", directory=directory).splitlines())
        multi = (f"host=127.0.0.1,127.0.0.1 port={primary},{standby} user=postgres "
                 "dbname=postgres target_session_attrs=read-write")
        checks.check("failover: scripts/cluster conninfo gives the pair as multi-host conninfo",
                     conninfo.get(str(primary)) == multi, repr(conninfo.get(str(primary))))
        sync = harness.psql(primary, "SELECT application_name || ' ' || sync_state "
                            "FROM pg_stat_replication")
        checks.check("failover: the primary streams to its standby synchronously",
                      sync == f"standby_{standby} sync", repr(sync))
        print(f"failover: servers ready in {time.monotonic() - t_setup:.1f} s (shard 5432 on {a}, "
              f"5433 on {primary} with standby {standby}, 5434 on {b})", flush=True)

        settings = F.settings_for(binary, checks, "failover")
        timeouts = {"connect_ms": 1000, "query_ms": 2000, "pool_wait_ms": 1000,
                    **settings.get("timeouts", {})}
        deadline = (timeouts["pool_wait_ms"] + timeouts["connect_ms"] + timeouts["query_ms"]) / 1000
        shards = [{"name": "5432", "conninfo": conninfo[str(a)]},
                  {"name": VICTIM, "conninfo": multi},
                  {"name": "5434", "conninfo": conninfo[str(b)]}]
        server = harness.Server(binary, extra={**settings, "shards": shards}, ports=[a, primary, b])
        seed = F.seed(server.port)
        load = F.Load(server.port, threads=8, post_share=0.8, pause=0.002, seed_ids=seed)
        poller = F.Poller(server.port)
        load.start()
        poller.start()
        try:
            time.sleep(PRE)
            pm = postmaster_pid(directory, primary)
            orphans = children_of(pm)
            t_kill, wall_kill = time.monotonic(), time.time()
            os.kill(pm, signal.SIGKILL)
            time.sleep(PROMOTE_DELAY)
            t_promote = time.monotonic()
            promoted = F.cluster("promote", "--port", str(standby), directory=directory).strip()
            t_promoted = time.monotonic()
            print(f"failover: {promoted}", flush=True)
            time.sleep(POST)
        finally:
            recs = load.stop()
            poller.stop()

        victim = [r for r in recs if r.shard == VICTIM]
        others = [r for r in recs if r.shard != VICTIM]
        before = [r for r in victim if r.acked and r.end < t_kill]
        checks.check("failover: the load ran, creating on 5433 before the kill",
                     len(recs) > 500 and len(before) > 50,
                     f"{len(recs)} requests ({F.fmt_counts(recs)}), {len(before)} creates on "
                     f"{VICTIM} acked before the kill")

        # While 5433 has no primary its keys are refused, naming the shard.
        failed = [r for r in victim if r.start >= t_kill and r.status in (503, 504)]
        named = all(isinstance(r.body, dict) and r.body.get("detail") in (
            f"shard {VICTIM} unavailable", f"shard {VICTIM} timed out") for r in failed)
        first_503 = min((r.end for r in failed), default=None)
        last_ok = max((r.end for r in victim if r.status in (200, 201)
                       and (first_503 is None or r.end <= first_503)), default=None)
        checks.check(f"failover: without a primary, {VICTIM}'s keys answer 503/504 naming it",
                     failed and named, f"{len(failed)}: {F.fmt_counts(failed)}, e.g. "
                     f"{failed[0].body if failed else None}" + (
                         f"; the first {first_503 - t_kill:.3f} s after the kill, the last 200 "
                         f"before it {last_ok - t_kill:+.3f} s" if failed and last_ok else ""))

        # Writes come back: the first create on 5433's keys that succeeds after its first failure.
        back = min((r.end for r in victim if r.kind == "POST" and r.acked
                    and r.start >= (first_503 or t_kill)), default=None)
        writes_back = back - t_kill if back else None
        checks.check(f"failover: creates on {VICTIM}'s keys succeed within {WRITES_BACK_WITHIN:.0f} s "
                     "of the kill", writes_back is not None and writes_back <= WRITES_BACK_WITHIN,
                     f"{writes_back:.3f} s after the kill, {back - t_promoted:+.3f} s from the "
                     f"end of promote" if writes_back is not None else "never")
        # Most of that is the promotion. shardurl's own part, from the end of the standby's
        # recovery (its log) to the first create there, is a probe interval and two connects.
        request, ready = promotion_in_log(directory, standby, wall_kill)
        own = back - (t_kill + ready) if back and ready is not None else None
        checks.check("failover: shardurl creates on the new primary within 2 s of its promotion",
                     own is not None and own <= 2.0,
                     f"{own:.3f} s after the standby's log says its recovery ended (promote "
                     f"request {request:.3f} s, recovery ended {ready:.3f} s after the kill)"
                     if own is not None
                     else f"never, or not in its log (promote request {request}, ready {ready})")
        late = [r for r in victim if r.start >= t_promoted + 2.0 and (r.status not in (200, 201)
                                                                     or r.error)]
        after = [r for r in victim if r.start >= t_promoted + 2.0]
        checks.check(f"failover: from 2 s after the promotion, every request to {VICTIM}'s keys "
                     "succeeds", after and not late,
                     f"{len(after)} requests, bad {[(r.kind, r.status, r.error) for r in late[:5]]}")

        # Nothing hangs: every request answered, within the configured deadlines.
        unanswered = [r for r in recs if r.status is None or r.error]
        longest = max((r.latency for r in recs), default=0.0)
        checks.check(f"failover: every request answered within the deadlines ({deadline:.0f} s)",
                     not unanswered and longest <= deadline + 0.5,
                     f"longest {longest:.3f} s, unanswered "
                     f"{[(r.kind, r.shard, r.error, round(r.start - t_kill, 3)) for r in unanswered[:5]]}")

        # The other shards do not notice.
        bad = [r for r in others if r.status not in (200, 201) or r.error]
        worst = max((r.latency for r in others), default=0.0)
        checks.check("failover: every request to 5432's and 5434's keys answered 200 within 2 s",
                      others and not bad and worst <= 2.0,
                      f"{len(others)} requests, worst {worst:.3f} s, p99 "
                      f"{F.pct([r.latency for r in others], 99) * 1000:.1f} ms, bad "
                      f"{[(r.kind, r.shard, r.status, r.error) for r in bad[:5]]}")

        # Readiness follows. Every worker probes every shard, and /readyz answers from the worker
        # that serves the poller's connection: if that worker does not carry 5433's statements,
        # it learns of the kill from its own probe (every health.interval_up_ms).
        down = [(t, body) for t, s, body in poller.ready if t >= t_kill and s == 503]
        checks.check(f"failover: /readyz 503 naming {VICTIM} after the kill",
                     down and all(isinstance(body, dict) and
                                  body.get("detail") == f"shards not ready: {VICTIM}"
                                  for _, body in down),
                     f"{len(down)} polls, the first {down[0][0] - t_kill:.3f} s after the kill, "
                     f"e.g. {down[0][1]}" if down else "never 503")
        ready_at = poller.first_ready_after(down[-1][0]) if down else None
        ready_after = ready_at - t_kill if ready_at else None
        checks.check("failover: /readyz 200 again within 5 s of the promotion",
                     ready_at is not None and ready_at - t_promoted <= 5.0
                     and poller.ready[-1][1] == 200,
                     f"{ready_after:.3f} s after the kill, {ready_at - t_promote:+.3f} s from the "
                     "start of promote" if ready_at else "never")
        health = [s for _, s in poller.health]
        checks.check("failover: /healthz 200 throughout", health and all(s == 200 for s in health),
                     f"{len(health)} polls, not 200: {[s for s in health if s != 200][:5]}")

        # Durability: every acknowledged create is on its shard, 5433's on the promoted standby.
        recovery = harness.psql(standby, "SELECT pg_is_in_recovery()")
        checks.check("failover: the standby is the primary now", recovery == "f", repr(recovery))
        lost, unacked = F.verify_durable(server.port, recs, load.url_prefix(), checks, "failover",
                                         shard_ports={"5432": a, VICTIM: standby, "5434": b})
        acked_victim = [r for r in victim if r.acked]
        print(f"failover: writes back {writes_back:.3f} s after the kill, "
              f"{back - t_promote:.3f} s after promote began (promoted {PROMOTE_DELAY} s after "
              f"the kill; scripts/cluster promote took {t_promoted - t_promote:.3f} s; PostgreSQL "
              f"got the request at {request:.3f} s and ended recovery at {ready:.3f} s), shardurl's "
              f"first create {own:.3f} s after that; "
              f"first 503 {first_503 - t_kill:.3f} s after the kill, {len(failed)} answered "
              f"503/504; /readyz 503 at {down[0][0] - t_kill:.3f} s, 200 at {ready_after:.3f} s; "
              f"longest request {longest:.3f} s; acked creates {len([r for r in recs if r.acked])} "
              f"({len(acked_victim)} on {VICTIM}), lost {lost}, unacked rows present {unacked}; "
              f"requests {len(recs)}"
              if writes_back is not None and ready_after is not None and first_503 and own is not None
              else f"failover: incomplete measurements, lost {lost}", flush=True)
    except Exception:
        checks.crashed("failover test")
    finally:
        if server is not None:
            logs.append(("shardurl stderr", server.output()))
            code = server.stop()
            checks.check("failover: shardurl exits 0 on SIGTERM", code == 0, f"exit {code}")
        try:
            F.cluster("stop", directory=directory)
        except Exception:
            checks.crashed("stopping the test's servers")
        try:
            kill_leftovers(directory, orphans)
        except Exception:
            checks.crashed("killing leftover servers")
        for sub in sorted(os.listdir(directory)):
            log = os.path.join(directory, sub, "log")
            if checks.failed and os.path.exists(log):
                with open(log, errors="replace") as f:
                    logs.append((f"PostgreSQL {sub} log", f.read()))
        shutil.rmtree(directory, ignore_errors=True)
    checks.finish(logs)


if __name__ == "__main__":
    main()
