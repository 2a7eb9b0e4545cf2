#!/usr/bin/python3
"""A hung shard: shard "5434" is reached through tcp_proxy.py, which stops forwarding (both ways,
existing connections too) for ~5 s and then forwards again. Then a black hole: a listener that
accepts and never answers, from shardurl's start.

Checks as crash_test: healthy shards' GETs 200 within 2 s, the hung shard's requests answered
within 10 s (504/503) and failing fast once it is known down, back within 5 s after the un-hang,
no request over 12 s, /healthz 200 throughout.

Usage (scripts/test runs it through ctest): /usr/bin/python3 test/fault/hung_test.py BINARY
"""
import selectors
import socket
import threading
import time

import faultlib as F
import harness
import tcp_proxy

VICTIM = "5434"


def via(proxy_port):
    p = F.ports()
    return [proxy_port if name == VICTIM else p[i] for i, name in enumerate(F.NAMES)]


def hung(binary, checks, settings, logs):
    with tcp_proxy.TcpProxy(F.port_of(VICTIM)) as proxy:
        server = harness.Server(binary, extra=settings, ports=via(proxy.port))
        try:
            seed = F.seed(server.port)
            outage = F.Outage("hung", server, VICTIM,
                              fail=lambda: proxy.set_mode(tcp_proxy.HANG),
                              recover=lambda: proxy.set_mode(tcp_proxy.FORWARD),
                              pre=3.0, during=5.0, post=5.0, seed_ids=seed)
            outage.run()
            m = outage.check(checks)
            lost, _ = F.verify_durable(server.port, outage.load.records,
                                       outage.load.url_prefix(), checks, "hung")
            worst_victim = max((r.latency for r in outage.load.records if r.shard == VICTIM),
                               default=0)
            print(f"hung: detected {m['detect'] or -1:.2f} s, worst hung-shard request "
                  f"{worst_victim:.2f} s, fail-fast p99 {m['fast_p99'] * 1000:.1f} ms, recovery "
                  f"{m['recovery'] if m['recovery'] is not None else -1:.2f} s (readyz "
                  f"{m['ready_after'] if m['ready_after'] is not None else -1:.2f} s), worst "
                  f"healthy GET {m['worst_healthy_get']:.3f} s, requests {m['requests']}, acked "
                  f"{len(outage.load.acked())}, lost {lost}", flush=True)
            storm(server, proxy, checks)
        finally:
            logs.append(("shardurl stderr (hung)", server.output()))
            code = server.stop()
            checks.check("hung: shardurl exits 0 on SIGTERM", code == 0, f"exit {code}")


def storm(server, proxy, checks, n=300):
    """Isolation under a waiter queue: the shard hangs again and `n` requests for its keys arrive
    at once (more than pool size + max_waiters); meanwhile healthy-shard GETs keep their latency."""
    victim_ids = F.ids_owned_by(VICTIM, n)
    healthy_ids = F.seed(server.port, per_shard=5)
    healthy_ids = [i for i in healthy_ids if F.owner(i) != VICTIM]
    proxy.set_mode(tcp_proxy.HANG)
    socks = []
    t0 = time.monotonic()
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=12)
            s.sendall(f"GET /urls/{victim_ids[i]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      .encode())
            socks.append(s)
        lat = []

        def healthy():
            conn = F.conn_to(server.port)
            while time.monotonic() < t0 + 3.0:
                rec = F.one_request(conn, "GET", url_id=healthy_ids[len(lat) % len(healthy_ids)])
                lat.append((rec.latency, rec.status))
            conn.close()

        prober = threading.Thread(target=healthy)
        prober.start()
        sel = selectors.DefaultSelector()
        data = {}
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            data[s] = b""
        done = {}
        while len(done) < len(socks) and time.monotonic() < t0 + 12:
            for key, _ in sel.select(timeout=0.5):
                s = key.fileobj
                try:
                    chunk = s.recv(65536)
                except OSError as e:
                    chunk = b""
                    data[s] += f" <{F.classify(e)}>".encode()
                if chunk:
                    data[s] += chunk
                else:
                    done[s] = time.monotonic() - t0
                    sel.unregister(s)
        prober.join(timeout=10)
        worst = max(done.values(), default=0.0)
        answers = {}
        for s in socks:
            head, _, body = data[s].partition(b"\r\n\r\n")
            status = head.split(b" ")[1].decode() if head.startswith(b"HTTP/1.1 ") else head[:40]
            key = (status, body.decode(errors="replace"))
            answers[key] = answers.get(key, 0) + 1
    finally:
        for s in socks:
            s.close()
        proxy.set_mode(tcp_proxy.FORWARD)
    ok_details = {f'{{"detail":"shard {VICTIM} {w}"}}' for w in ("unavailable", "timed out", "overloaded")}
    good = all(st in ("503", "504") and body in ok_details for st, body in answers)
    checks.check(f"storm: {n} queued requests for the hung shard all answered 503/504 within 10 s",
                 good and worst <= 10.0 and len(done) == n,
                 f"last answer after {worst:.3f} s: {answers}")
    worst_h = max((l for l, _ in lat), default=0)
    checks.check("storm: healthy-shard GETs meanwhile 200 within 2 s",
                 lat and all(st == 200 for _, st in lat) and worst_h <= 2.0,
                 f"{len(lat)} GETs, worst {worst_h:.3f} s, p99 {F.pct([l for l, _ in lat], 99) * 1000:.1f} ms")
    # And it comes back.
    deadline = time.monotonic() + 5
    back = None
    conn = F.conn_to(server.port)
    while time.monotonic() < deadline:
        status, _ = server.request("GET", "/readyz")
        if status == 200:
            back = time.monotonic()
            break
        time.sleep(0.05)
    conn.close()
    checks.check("storm: the shard is ready again after the un-hang", back is not None)
    print(f"storm: {n} requests to the hung shard answered within {worst:.2f} s ({answers}), "
          f"healthy GET worst {worst_h:.3f} s over {len(lat)}", flush=True)


def black_hole(binary, checks, settings, logs):
    """Shard 5434 is a listener that accepts and never answers, from the start."""
    with tcp_proxy.black_hole() as hole:
        server = harness.Server(binary, extra=settings, ports=via(hole.port))
        poller = F.Poller(server.port).start()
        load = F.Load(server.port, threads=6, seed_ids=F.ids_owned_by(VICTIM))
        t0 = time.monotonic()
        try:
            load.start()
            time.sleep(5.0)
        finally:
            load.stop()
            poller.stop()
        try:
            recs = load.records
            healthy = [r for r in recs if r.shard != VICTIM]
            victim = [r for r in recs if r.shard == VICTIM]
            h_get = [r.latency for r in healthy if r.kind == "GET"]
            checks.check("black hole: every healthy-shard request 200, GETs within 2 s",
                         healthy and all(r.status in (200, 201) for r in healthy)
                         and max(h_get, default=0) <= 2.0,
                         f"{len(healthy)} requests ({F.fmt_counts(healthy)}), worst GET "
                         f"{max(h_get, default=0):.3f} s")
            worst = max((r.latency for r in victim), default=0)
            checks.check("black hole: its keys answered 503/504 within 10 s",
                         victim and all(r.status in (503, 504) for r in victim) and worst <= 10,
                         f"{len(victim)} requests ({F.fmt_counts(victim)}), worst {worst:.3f} s")
            down = [(t, b) for t, s, b in poller.ready if s == 503
                    and isinstance(b, dict) and b.get("detail") == f"shards not ready: {VICTIM}"]
            t_down = down[0][0] if down else None
            checks.check("black hole: /readyz 503 naming it", down,
                         f"after {t_down - t0:.3f} s" if down else
                         f"readyz: {[s for _, s, _ in poller.ready][:10]}")
            fast = [r.latency for r in victim if t_down and r.start >= t_down + 0.3]
            p99 = F.pct(fast, 99)
            checks.check("black hole: once known down, its requests fail fast (p99 < 100 ms)",
                         fast and p99 < 0.1, f"p99 {p99 * 1000:.1f} ms over {len(fast)}")
            checks.check("black hole: /healthz 200 throughout",
                         all(s == 200 for _, s in poller.health), f"{len(poller.health)} polls")
            print(f"black hole: detected {t_down - t0 if t_down else -1:.2f} s, worst request "
                  f"{worst:.2f} s, fail-fast p99 {p99 * 1000:.1f} ms, worst healthy GET "
                  f"{max(h_get, default=0):.3f} s, requests {len(recs)}, proxy accepted "
                  f"{hole.accepted}", flush=True)
        finally:
            logs.append(("shardurl stderr (black hole)", server.output()))
            code = server.stop()
            checks.check("black hole: shardurl exits 0 on SIGTERM", code == 0, f"exit {code}")


def main():
    binary = F.server_binary()
    checks = F.Checks("hung")
    logs = []
    try:
        F.restore_shards()
        settings = F.settings_for(binary, checks, "hung")
        for part in (hung, black_hole):
            try:
                part(binary, checks, settings, logs)
            except Exception:
                checks.crashed(part.__name__)
    finally:
        F.wrap_up(checks, logs)


if __name__ == "__main__":
    main()
