#!/usr/bin/env python3
"""bench/run's small HTTP helpers (standard library only).

  client.py freeport
      Print a TCP port on 127.0.0.1 that is free right now.
  client.py seed --port P --count N --out FILE [--nonce X] [--workers W]
      Create N links with POST /urls?full_url=https://bench.example/seed/X/I (W keep-alive
      connections in parallel), check every answer is 200 with a url_id, write the ids to FILE
      one per line and print how many landed on each shard.
  client.py touch --port P --ids FILE --prefix PREFIX --expect STATUS [--workers W]
      GET PREFIX+ID once for every id in FILE (e.g. to fill a cache before a measurement) and
      check every answer has status STATUS; print how long it took.
  client.py idle --port P --count N [--path /healthz]
      Open N keep-alive connections, send one GET on each and read its answer, print
      "opened N" (or "failed ..." and exit 1), then hold them idle. On SIGUSR1 print
      "open K" (how many the server has not closed); on SIGTERM/SIGINT close them and exit.
"""
import argparse
import collections
import json
import http.client
import os
import signal
import socket
import sys
import threading
import time


def freeport(_args):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def each_request(port, count, workers, call):
    """Runs call(conn, i) for i in range(count) over `workers` keep-alive connections, in
    parallel. Returns the first error's text (the others stop at their next item), or None."""
    errors = []
    lock = threading.Lock()
    next_index = [0]

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            with lock:
                i = next_index[0]
                if i >= count or errors:
                    break
                next_index[0] += 1
            try:
                call(conn, i)
            except Exception as e:  # noqa: BLE001 - reported, then the run stops
                with lock:
                    errors.append(str(e))
                break
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors[0] if errors else None


def request(conn, method, target, expect):
    conn.request(method, target)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != expect:
        raise RuntimeError("%s %s: HTTP %d %r" % (method, target, resp.status, body[:200]))
    return body


def seed(args):
    ids = [None] * args.count
    shards = collections.Counter()
    lock = threading.Lock()

    def create(conn, i):
        target = "/urls?full_url=https://bench.example/seed/%s/%d" % (args.nonce, i)
        doc = json.loads(request(conn, "POST", target, 200))
        ids[i] = doc["url_id"]
        with lock:
            shards[doc["server"]["nodename"]] += 1

    start = time.monotonic()
    error = each_request(args.port, args.count, args.workers, create)
    if error:
        print("seed failed: %s" % error, file=sys.stderr)
        return 1
    with open(args.out, "w") as f:
        for i in ids:
            f.write(i + "\n")
    took = time.monotonic() - start
    per_shard = " ".join("%s=%d" % kv for kv in sorted(shards.items()))
    print("seeded %d links in %.1f s (%.0f/s); per shard: %s"
          % (args.count, took, args.count / took, per_shard))
    return 0


def touch(args):
    with open(args.ids) as f:
        ids = [line.strip() for line in f if line.strip()]
    start = time.monotonic()
    error = each_request(args.port, len(ids), args.workers,
                         lambda conn, i: request(conn, "GET", args.prefix + ids[i], args.expect))
    if error:
        print("touch failed: %s" % error, file=sys.stderr)
        return 1
    print("fetched %d ids (%s...) in %.1f s, all HTTP %d"
          % (len(ids), args.prefix, time.monotonic() - start, args.expect))
    return 0


def read_answer(sock):
    """Reads one HTTP response with a Content-Length body; returns its status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return int(head.split(b" ", 2)[1])


def idle(args):
    request = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (args.path, args.port)).encode()
    socks = []
    try:
        for i in range(args.count):
            s = socket.create_connection(("127.0.0.1", args.port), timeout=10)
            s.sendall(request)
            status = read_answer(s)
            if status != 200:
                raise RuntimeError("connection %d: HTTP %d" % (i, status))
            socks.append(s)
    except Exception as e:  # noqa: BLE001
        print("failed after %d connections: %s" % (len(socks), e), flush=True)
        return 1
    for s in socks:
        s.setblocking(False)
    print("opened %d" % len(socks), flush=True)

    def still_open():
        n = 0
        for s in socks:
            try:
                if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):  # unasked-for data: open
                    n += 1
            except BlockingIOError:  # nothing to read: open and idle
                n += 1
            except OSError:  # reset
                pass
        return n

    stop = []
    signal.signal(signal.SIGUSR1, lambda *_: print("open %d" % still_open(), flush=True))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.2)
    for s in socks:
        s.close()
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("freeport")
    s = sub.add_parser("seed")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--nonce", default=str(os.getpid()))
    s.add_argument("--workers", type=int, default=16)
    t = sub.add_parser("touch")
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--ids", required=True)
    t.add_argument("--prefix", default="/")
    t.add_argument("--expect", type=int, default=200)
    t.add_argument("--workers", type=int, default=16)
    i = sub.add_parser("idle")
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--count", type=int, required=True)
    i.add_argument("--path", default="/healthz")
    args = p.parse_args()
    return {"freeport": freeport, "seed": seed, "touch": touch, "idle": idle}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
