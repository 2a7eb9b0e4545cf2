#!/usr/bin/python3
"""Graceful shutdown: SIGTERM under mixed load. shardurl must stop accepting, finish the requests
in flight (shard "5434" is behind tcp_proxy.py in delay mode, so some are slow and surely in
flight at the signal), close its connections and exit 0 within shutdown_ms. Every request that
got an answer got a complete, valid one; no request the server had read saw a reset.

Usage (scripts/test runs it through ctest): /usr/bin/python3 test/fault/sigterm_test.py BINARY
"""
import signal
import subprocess
import time

import faultlib as F
import harness
import tcp_proxy

SLOW = "5434"
SHUTDOWN_S = F.SETTINGS["timeouts"]["shutdown_ms"] / 1000


def terminate(server):
    """Sends SIGTERM and waits for the exit: (when it was sent, exit code or None, seconds taken)."""
    t_sig = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=SHUTDOWN_S + 5)
    except subprocess.TimeoutExpired:
        code = None
    return t_sig, code, time.monotonic() - t_sig


def while_hung(binary, settings, checks, logs):
    """SIGTERM while shard 5434 hangs: requests stuck on it end at their deadline (504/503) and
    shardurl still exits 0 well within shutdown_ms."""
    with tcp_proxy.TcpProxy(F.port_of(SLOW)) as proxy:
        ports = [proxy.port if n == SLOW else p for n, p in zip(F.NAMES, F.ports())]
        server = harness.Server(binary, extra=settings, ports=ports)
        try:
            seed = F.seed(server.port, per_shard=10)
            load = F.Load(server.port, threads=8, pause=0.002, seed_ids=seed).start()
            time.sleep(1.0)
            proxy.set_mode(tcp_proxy.HANG)
            time.sleep(0.5)
            t_sig, code, exit_s = terminate(server)
            time.sleep(0.2)
            recs = load.stop()
            checks.check("hung shutdown: exits 0 within shutdown_ms + 2 s",
                         code == 0 and exit_s <= SHUTDOWN_S + 2, f"exit {code} after {exit_s:.3f} s")
            answered = [r for r in recs if r.status is not None]
            invalid = [r for r in answered if r.error or not isinstance(r.body, dict)
                       or r.status not in (200, 201, 503, 504)
                       or (r.status in (503, 504) and r.shard != SLOW)]
            checks.check("hung shutdown: every answer complete (200, or 503/504 for the hung shard)",
                         not invalid, f"{F.fmt_counts(answered)}")
            in_flight = [r for r in recs if r.start < t_sig - 0.01 and (r.end or 0) > t_sig]
            unfinished = [r for r in in_flight if r.status is None]
            checks.check("hung shutdown: the requests in flight at the signal got their answer",
                         in_flight and not unfinished,
                         f"{len(in_flight)} in flight ({F.fmt_counts(in_flight)}), unfinished "
                         f"{[(r.kind, r.error) for r in unfinished[:5]]}")
            bad_resets = [r for r in recs if r.error in ("reset", "broken_pipe")
                          and (not r.fresh or r.start < t_sig)]
            checks.check("hung shutdown: no reset on an accepted connection", not bad_resets,
                         str([(r.kind, r.error) for r in bad_resets[:5]]))
            print(f"sigterm while hung: exit {code} after {exit_s:.2f} s, in flight "
                  f"{len(in_flight)} ({F.fmt_counts(in_flight)})", flush=True)
        finally:
            logs.append(("shardurl stderr (hung shutdown)", server.output()))
            server.stop()


def second_signal(binary, settings, checks, logs):
    """A second SIGTERM during the drain ends it at once: requests stuck on a hung shard (with long
    deadlines, so the drain would last) are dropped and shardurl exits without waiting."""
    long = {**settings, "timeouts": {**settings["timeouts"], "request_ms": 60000, "query_ms": 60000,
                                     "shutdown_ms": 30000}}
    with tcp_proxy.TcpProxy(F.port_of(SLOW)) as proxy:
        ports = [proxy.port if n == SLOW else p for n, p in zip(F.NAMES, F.ports())]
        server = harness.Server(binary, extra=long, ports=ports)
        try:
            seed = F.seed(server.port, per_shard=5)
            proxy.set_mode(tcp_proxy.HANG)
            load = F.Load(server.port, threads=4, pause=0.01, seed_ids=seed).start()
            time.sleep(1.0)
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(1.5)
            still_draining = server.proc.poll() is None
            t_second = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            try:
                code = server.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            took = time.monotonic() - t_second
            load.stop()
            log = server.output()
            checks.check("second signal: the first one drains (requests stuck on the hung shard)",
                         still_draining, "exited before the second signal")
            checks.check("second signal: exits at once (under 1 s), status 0", code == 0 and took < 1.0,
                         f"exit {code} after {took:.3f} s")
            checks.check("second signal: the log says so", "SIGTERM again: closing" in log and
                         "shardurl: stopped" in log, log.strip().splitlines()[-3:])
            print(f"second signal: exit {code} {took:.3f} s after it", flush=True)
        finally:
            logs.append(("shardurl stderr (second signal)", server.output()))
            server.stop()


def main():
    binary = F.server_binary()
    checks = F.Checks("sigterm")
    logs = []
    server = None
    proxy = None
    settings = {}
    try:
        F.restore_shards()
        settings = F.settings_for(binary, checks, "sigterm")
        if settings:
            # This test is about draining, not deadlines: a session through the slow proxy needs
            # several 150 ms round trips to open, so give it room even on a loaded machine.
            settings = {**settings, "timeouts": {**settings["timeouts"], "connect_ms": 5000,
                                                 "pool_wait_ms": 5000, "query_ms": 5000}}
        proxy = tcp_proxy.TcpProxy(F.port_of(SLOW), delay=0.15)
        ports = [proxy.port if n == SLOW else p for n, p in zip(F.NAMES, F.ports())]
        server = harness.Server(binary, extra=settings, ports=ports)
        seed = F.seed(server.port, per_shard=10)
        proxy.set_mode(tcp_proxy.DELAY)  # each chunk 150 ms late: 5434's requests take ~0.3 s
        load = F.Load(server.port, threads=12, pause=0.002, seed_ids=seed).start()
        time.sleep(2.5)
        t_sig, code, exit_s = terminate(server)
        time.sleep(0.3)
        recs = load.stop()
        checks.check("sigterm: exits 0 within shutdown_ms + 2 s", code == 0 and exit_s <= SHUTDOWN_S + 2,
                     f"exit {code} after {exit_s:.3f} s")
        answered = [r for r in recs if r.status is not None]
        invalid = [r for r in answered if r.status not in (200, 201) or r.error
                   or not isinstance(r.body, dict) or not r.body.get("url_id")]
        checks.check("sigterm: every answer is a complete, valid 200", answered and not invalid,
                     f"{len(answered)} answers, invalid {[(r.kind, r.status, r.error, r.body) for r in invalid[:3]]}")
        in_flight = [r for r in recs if r.start < t_sig - 0.01 and (r.end or 0) > t_sig]
        unfinished = [r for r in in_flight if r.status is None]
        checks.check("sigterm: the requests in flight at the signal all got their answer",
                     in_flight and not unfinished,
                     f"{len(in_flight)} in flight ({len([r for r in in_flight if r.shard == SLOW])} "
                     f"on the slow shard, latest answer {max((r.end for r in in_flight), default=t_sig) - t_sig:.3f} s "
                     f"after the signal), unfinished {[(r.kind, r.error, r.fresh) for r in unfinished[:5]]}")
        early = [r for r in recs if r.start < t_sig - 0.01 and r.status is None]
        checks.check("sigterm: no request sent before the signal failed", not early,
                     f"{[(r.kind, r.error, round(r.start - t_sig, 3)) for r in early[:5]]}")
        resets = [r for r in recs if r.error in ("reset", "broken_pipe")]
        bad_resets = [r for r in resets if not r.fresh or r.start < t_sig]
        checks.check("sigterm: no reset on a connection the server had accepted", not bad_resets,
                     f"{[(r.kind, r.error, r.fresh, round(r.start - t_sig, 3)) for r in bad_resets[:5]]}"
                     f"; resets of fresh connects after the signal (listen backlog): "
                     f"{len(resets) - len(bad_resets)}")
        others = [r for r in recs if r.status is None and r.error not in ("reset", "broken_pipe",
                                                                          "closed", "refused")]
        checks.check("sigterm: no timeout or other transport failure", not others,
                     f"{[(r.kind, r.error) for r in others[:5]]}")
        log = server.output()
        checks.check("sigterm: the log says it drained and stopped",
                     "SIGTERM: finishing requests in flight" in log and "shardurl: stopped" in log
                     and "still open at the shutdown deadline" not in log, log.strip().splitlines()[-1])
        after = [r for r in recs if r.start >= t_sig]
        counts = {k: len([r for r in recs if (r.error or r.status) == k])
                  for k in (200, "closed", "refused", "reset", "broken_pipe")}
        print(f"sigterm: exit {code} after {exit_s:.2f} s, requests {len(recs)}, in flight at the "
              f"signal {len(in_flight)} (all answered: {not unfinished}), after the signal "
              f"{len(after)}: {F.fmt_counts(after)}; totals {counts}", flush=True)
    except Exception:
        checks.crashed("sigterm test")
    finally:
        if server is not None:
            logs.append(("shardurl stderr", server.output()))
            server.stop()
        if proxy is not None:
            proxy.close()
        try:
            while_hung(binary, settings, checks, logs)
        except Exception:
            checks.crashed("sigterm while hung")
        try:
            second_signal(binary, settings, checks, logs)
        except Exception:
            checks.crashed("second signal")
    F.wrap_up(checks, logs)


if __name__ == "__main__":
    main()
