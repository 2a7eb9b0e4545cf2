#!/usr/bin/python3
"""A shard whose port refuses connections: shardurl starts with shard "5434" pointing at a free
port nobody listens on. Its keys answer 503 at once (p99 < 100 ms), the other shards are
unaffected, /readyz names it; then a real PostgreSQL comes up on that port (scripts/cluster, a
throwaway directory) and its keys serve within about a second, without restarting shardurl.

Usage (scripts/test runs it through ctest): /usr/bin/python3 test/fault/refused_test.py BINARY
"""
import http.client
import json
import shutil
import tempfile
import time

import faultlib as F
import harness
import tcp_proxy

VICTIM = "5434"


def slow_connect(binary, checks, logs):
    """A shard far away: every chunk through a proxy 0.4 s late, so opening a session (startup,
    authentication, the session's PREPAREs) takes well over a second. With connect_ms above that
    and pool_wait_ms far below it, the session still opens: connect_ms is its own bound, not cut
    short by the pool wait. Its keys answer 200, slowly, and the shard is never called down."""
    settings = {"timeouts": {"connect_ms": 8000, "pool_wait_ms": 300, "query_ms": 8000,
                             "request_ms": 12000, "shutdown_ms": 10000},
                "health": {"interval_up_ms": 1000, "interval_down_ms": 200}}
    with tcp_proxy.TcpProxy(F.port_of(VICTIM), delay=0.4) as proxy:
        proxy.set_mode(tcp_proxy.DELAY)
        ports = [proxy.port if n == VICTIM else p for n, p in zip(F.NAMES, F.ports())]
        server = harness.Server(binary, extra=settings, ports=ports)
        try:
            url_id = F.ids_owned_by(VICTIM, count=1)[0]
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            started = time.monotonic()
            conn.request("GET", "/urls/" + url_id)
            resp = conn.getresponse()
            body = resp.read()
            took = time.monotonic() - started
            conn.close()
            checks.check("slow connect: a session that takes over a second to open still serves",
                         resp.status in (200, 404, 410) and took > 0.8,
                         f"{resp.status} {body[:80]!r} after {took:.2f} s")
            log = server.output()
            checks.check("slow connect: the shard is never called down", "5434: down" not in log,
                         [line for line in log.splitlines() if "5434" in line][:3])
            print(f"slow connect: answered {resp.status} after {took:.2f} s", flush=True)
        finally:
            logs.append(("shardurl stderr (slow connect)", server.output()))
            server.stop()


def main():
    binary = F.server_binary()
    checks = F.Checks("refused")
    logs = []
    server = None
    spare = tempfile.mkdtemp(prefix="shardurl-fault-refused.")
    try:
        F.restore_shards()
        settings = F.settings_for(binary, checks, "refused")
        port = harness.free_port()
        # initdb ahead (slow), then stop it: during the test the port refuses and start is quick.
        F.start_shard(port, directory=spare)
        F.cluster("stop-shard", "--port", str(port), "--mode", "fast", directory=spare)
        ports = [port if n == VICTIM else p for n, p in zip(F.NAMES, F.ports())]
        server = harness.Server(binary, extra=settings, ports=ports)
        seed = []
        outage = F.Outage("refused", server, VICTIM, fail=lambda: None,
                          recover=lambda: F.start_shard(port, directory=spare),
                          pre=0.0, during=3.0, post=3.0, seed_ids=seed + F.ids_owned_by(VICTIM),
                          direct_port=port)
        outage.t_fail = time.monotonic()
        outage.run()
        recs = outage.load.records
        healthy = [r for r in recs if r.shard != VICTIM]
        h_get = [r.latency for r in healthy if r.kind == "GET"]
        checks.check("refused: every healthy-shard request 200, GETs within 2 s",
                     healthy and all(r.status in (200, 201) and not r.error for r in healthy)
                     and max(h_get, default=0) <= 2.0,
                     f"{len(healthy)} requests ({F.fmt_counts(healthy)}), worst GET "
                     f"{max(h_get, default=0):.3f} s, p99 {F.pct(h_get, 99) * 1000:.1f} ms")
        down = [r for r in recs if r.shard == VICTIM and r.end <= outage.t_recover_begin]
        first_fail = min((r.end for r in down if r.status == 503), default=None)
        after = [r.latency for r in down if first_fail and r.start >= first_fail]
        p99 = F.pct(after, 99)
        checks.check("refused: its keys answer 503 'shard 5434 unavailable'",
                     down and all(r.status == 503 and r.body == {"detail": "shard 5434 unavailable"}
                                  for r in down), F.fmt_counts(down))
        checks.check("refused: after the first detection, p99 < 100 ms",
                     after and p99 < 0.1,
                     f"p99 {p99 * 1000:.1f} ms, max {max(after, default=0) * 1000:.1f} ms over "
                     f"{len(after)}; the very first took "
                     f"{min((r.latency for r in down), default=0) * 1000:.1f} ms")
        named = [b for t, s, b in outage.poller.ready if t <= outage.t_recover_begin and s == 503
                 and b.get("detail") == "shards not ready: 5434"
                 and b["shards"]["5434"]["state"] == "down"]
        checks.check("refused: /readyz 503 naming 5434",
                     named and len(named) == len([1 for t, *_ in outage.poller.ready
                                                   if t <= outage.t_recover_begin]),
                     f"e.g. {named[0] if named else None}")
        # Recovery: a real shard on that port (its initdb/ applied by start-shard).
        back = [r for r in recs if r.shard == VICTIM and r.start >= outage.t_recover_begin
                and r.status in (200, 201)]
        first_ok = min((r.end for r in back), default=None)
        rec_direct = first_ok - outage.t_direct if first_ok and outage.t_direct else None
        rec_step = first_ok - outage.t_recovered if first_ok else None
        checks.check("refused: a real shard on the port serves its keys within ~1 s",
                     rec_step is not None and rec_step <= 1.5,
                     f"first 200 {rec_step:.3f} s after start-shard returned, {rec_direct:.3f} s "
                     f"after psql first answered" if rec_step is not None and rec_direct is not None
                     else f"never: {F.fmt_counts([r for r in recs if r.shard == VICTIM and r.start >= outage.t_recover_begin])}")
        late = [r for r in recs if r.shard == VICTIM and r.start >= outage.t_recovered + 1.5
                and r.status not in (200, 201, 404)]
        checks.check("refused: after that, its keys keep serving (200/404)", not late,
                     F.fmt_counts(late))
        ready_at = outage.poller.first_ready_after(outage.t_recover_begin)
        checks.check("refused: /readyz 200 again within ~1 s",
                     ready_at is not None and ready_at - outage.t_recovered <= 1.5,
                     f"{ready_at - outage.t_recovered:.3f} s after start-shard returned"
                     if ready_at else "never")
        checks.check("refused: /healthz 200 throughout and no transport error",
                     all(s == 200 for _, s in outage.poller.health) and not [r for r in recs if r.error],
                     f"{len(outage.poller.health)} polls")
        print(f"refused: fail-fast p99 {p99 * 1000:.1f} ms over {len(after)}, recovery "
              f"{rec_step if rec_step is not None else -1:.2f} s after start-shard returned "
              f"({rec_direct if rec_direct is not None else -1:.2f} s after psql answered), readyz "
              f"{(ready_at - outage.t_recovered) if ready_at else -1:.2f} s, worst healthy GET "
              f"{max(h_get, default=0):.3f} s, requests {len(recs)}", flush=True)
    except Exception:
        checks.crashed("refused test")
    finally:
        if server is not None:
            logs.append(("shardurl stderr", server.output()))
            code = server.stop()
            checks.check("refused: shardurl exits 0 on SIGTERM", code == 0, f"exit {code}")
        try:
            F.cluster("stop", directory=spare)
        except Exception:
            checks.crashed("stopping the spare shard")
        shutil.rmtree(spare, ignore_errors=True)
        try:
            slow_connect(binary, checks, logs)
        except Exception:
            checks.crashed("slow connect")
    F.wrap_up(checks, logs)


if __name__ == "__main__":
    main()
