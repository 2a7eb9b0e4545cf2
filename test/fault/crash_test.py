#!/usr/bin/python3
"""A shard crashes (pg_ctl -m immediate) under mixed load and comes back, shardurl keeps running.

Checks: no acknowledged create lost; healthy shards' GETs answer 200 within 2 s; the failed
shard's keys answer (503) within 10 s and fail fast while known down; they serve again within 5 s
of the restart, without restarting shardurl; /readyz follows; /healthz stays 200.

Usage (scripts/test runs it through ctest): /usr/bin/python3 test/fault/crash_test.py BINARY
"""
import time

import faultlib as F
import harness

VICTIM = "5433"


def main():
    binary = F.server_binary()
    checks = F.Checks("crash")
    logs = []
    port = F.port_of(VICTIM)
    server = None
    try:
        F.restore_shards()
        server = harness.Server(binary, extra=F.settings_for(binary, checks, "crash"))
        seed = F.seed(server.port)
        outage = F.Outage("crash", server, VICTIM,
                          fail=lambda: F.stop_shard(port, "immediate"),
                          recover=lambda: F.start_shard(port),
                          pre=3.0, during=4.0, post=5.0, seed_ids=seed, direct_port=port)
        outage.run()
        m = outage.check(checks)
        lost, unacked = F.verify_durable(server.port, outage.load.records,
                                         outage.load.url_prefix(), checks, "crash")
        acked = len(outage.load.acked())
        print(f"crash: recovery {m['recovery']:.2f} s (readyz {m['ready_after']:.2f} s), "
              f"detected {m['detect']:.2f} s, fail-fast p99 {m['fast_p99'] * 1000:.1f} ms, "
              f"worst healthy GET {m['worst_healthy_get']:.3f} s, requests {m['requests']}, "
              f"acked {acked}, lost {lost}, unacked rows present {unacked}"
              if m["recovery"] is not None and m["ready_after"] is not None and m["detect"]
              else f"crash: incomplete measurements {m}, acked {acked}, lost {lost}", flush=True)
    except Exception:
        checks.crashed("crash test")
    finally:
        try:
            F.restore_shards()
        except Exception:
            checks.crashed("restoring the shards")
        if server is not None:
            out = server.output()
            logs.append(("shardurl stderr", out))
            code = server.stop()
            checks.check("crash: shardurl exits 0 on SIGTERM", code == 0, f"exit {code}")
    checks.finish(logs)


if __name__ == "__main__":
    main()
