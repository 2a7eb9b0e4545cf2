#!/usr/bin/python3
"""kill -9 of shardurl under write load: every acknowledged create must be readable after a
restart on the same shards, present exactly once on its owning shard; the creates that got no
answer are unknown, but none may show up twice, misplaced or half-written, and posting them again
gives their id without adding a row.

Usage (scripts/test runs it through ctest): /usr/bin/python3 test/fault/kill9_test.py BINARY
"""
import signal
import time

import faultlib as F
import harness


def main():
    binary = F.server_binary()
    checks = F.Checks("kill9")
    logs = []
    first = second = None
    try:
        F.restore_shards()
        settings = F.settings_for(binary, checks, "kill9")
        first = harness.Server(binary, extra=settings)
        load = F.Load(first.port, threads=8, post_share=1.0, pause=0.0).start()
        time.sleep(3.0)
        t_kill = time.monotonic()
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        time.sleep(0.5)
        recs = load.stop()
        logs.append(("shardurl stderr (killed)", first.output()))
        first.stop()
        before = [r for r in recs if r.start < t_kill]
        acked = [r for r in recs if r.acked]
        unknown = [r for r in recs if r.status is None]
        in_flight = [r for r in recs if r.start < t_kill and r.status is None]
        checks.check("kill9: write load ran and was cut mid-flight",
                     len(acked) > 200 and in_flight,
                     f"{len(recs)} requests ({F.fmt_counts(recs)}), {len(in_flight)} in flight "
                     f"at the kill")
        checks.check("kill9: every answer before the kill was a create (200)",
                     all(r.status == 200 for r in before if r.status is not None),
                     F.fmt_counts([r for r in before if r.status not in (200, None)]))
        second = harness.Server(binary, extra=settings)
        lost, unacked_present = F.verify_durable(second.port, recs, load.url_prefix(), checks,
                                                 "kill9")
        # The unknown ones: posting again gives the deterministic id and adds no row.
        conn = F.conn_to(second.port)
        again_bad = []
        try:
            for r in in_flight:
                again = F.one_request(conn, "POST", url=r.url)
                if again.status != 200 or again.url_id != F.expected_id(r.url):
                    again_bad.append((r.url, again.status, again.error, again.url_id))
        finally:
            conn.close()
        n_again = len(in_flight)
        rows = sum(len(F.rows_on_shard(p, load.url_prefix())) for p in F.ports())
        checks.check("kill9: re-posting the unanswered creates gives their ids, no new rows",
                     not again_bad and rows == len({r.url for r in acked} | {r.url for r in in_flight}),
                     f"{n_again} re-posted, bad {again_bad[:3]}, rows {rows}")
        print(f"kill9: acked {len(acked)}, lost {lost}, unanswered {len(unknown)} (in flight at "
              f"the kill {len(in_flight)}, of which committed anyway {unacked_present}), "
              f"requests {len(recs)}", flush=True)
    except Exception:
        checks.crashed("kill9 test")
    finally:
        for s, label in ((first, "killed"), (second, "restarted")):
            if s is not None and not s.log.closed:
                logs.append((f"shardurl stderr ({label})", s.output()))
                code = s.stop()
                if label == "restarted":
                    checks.check("kill9: the restarted shardurl exits 0 on SIGTERM", code == 0,
                                 f"exit {code}")
    F.wrap_up(checks, logs)


if __name__ == "__main__":
    main()
