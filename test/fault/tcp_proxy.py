"""A small fault-injecting TCP proxy for the fault tests (127.0.0.1 only, stdlib asyncio).

It runs its own event loop on a daemon thread and forwards every accepted connection to one
upstream port. The mode can be flipped at any time from the test's thread:

  forward    pass bytes both ways
  hang       keep accepting, but stop forwarding in both directions and never answer; existing
             connections go silent too. Bytes read meanwhile are held and delivered, in order,
             once the mode is back to forward (like a network partition that heals)
  delay      forward, but hold every chunk `delay` seconds first (a slow link)
  refuse     the listener is closed (new connects get ECONNREFUSED) and every open connection
             is reset; back to forward re-opens the listener on the same port

upstream=None makes a pure black hole: a listener that accepts and never answers.
Lifetime is bounded: the proxy shuts itself down after `max_lifetime` seconds.
"""
import asyncio
import socket
import struct
import threading
import time

FORWARD, HANG, DELAY, REFUSE = "forward", "hang", "delay", "refuse"


class TcpProxy:
    def __init__(self, upstream_port, port=0, delay=0.2, max_lifetime=170.0):
        self.upstream_port = upstream_port
        self.delay = delay
        self.mode = FORWARD
        self.accepted = 0
        self._max_lifetime = max_lifetime
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._flowing = None  # asyncio.Event, set while bytes may flow
        self._writers = set()
        self._ready = threading.Event()
        self._done = None
        # Bind here so the port is known (and held) before the loop starts.
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("tcp proxy did not start")

    # ---- control, from any thread ----

    def set_mode(self, mode):
        fut = asyncio.run_coroutine_threadsafe(self._set_mode(mode), self._loop)
        fut.result(timeout=10)

    def close(self):
        if self._loop.is_closed():
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        except Exception:
            pass
        self._thread.join(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the loop ----

    def _run(self):
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self):
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._done = asyncio.Event()
        await self._listen()
        self._ready.set()
        try:
            await asyncio.wait_for(self._done.wait(), self._max_lifetime)
        except asyncio.TimeoutError:
            pass
        await self._stop_listening()
        for w in list(self._writers):
            w.close()
        self._flowing.set()  # let held pumps run to their end
        await asyncio.sleep(0.05)

    async def _listen(self):
        if self._sock is None:
            self._sock = socket.socket()
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind(("127.0.0.1", self.port))
        self._server = await asyncio.start_server(self._handle, sock=self._sock, backlog=128)
        self._sock = None

    async def _stop_listening(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _shutdown(self):
        self._done.set()

    async def _set_mode(self, mode):
        old, self.mode = self.mode, mode
        if mode == HANG:
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode == REFUSE and old != REFUSE:
            await self._stop_listening()
            for w in list(self._writers):
                sock = w.get_extra_info("socket")
                if sock is not None:  # SO_LINGER 0: close with a reset, like a dead peer
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                w.close()
        elif old == REFUSE and mode != REFUSE:
            await self._listen()

    async def _handle(self, reader, writer):
        self.accepted += 1
        self._writers.add(writer)
        up_writer = None
        try:
            if self.upstream_port is None:  # black hole: accept, read, never answer
                while await reader.read(65536):
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            self._writers.add(up_writer)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer),
                                 return_exceptions=True)
        except OSError:
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.close()

    async def _pump(self, reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                await self._flowing.wait()  # hang: hold what was read (and the EOF) until forward
                if self.mode == DELAY:
                    await asyncio.sleep(self.delay)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        finally:
            try:
                if writer.can_write_eof():
                    writer.write_eof()
            except OSError:
                pass


def black_hole(max_lifetime=170.0):
    """A listener that accepts and never answers."""
    return TcpProxy(None, max_lifetime=max_lifetime)


if __name__ == "__main__":  # manual use: tcp_proxy.py UPSTREAM_PORT [SECONDS]
    import sys
    p = TcpProxy(int(sys.argv[1]), max_lifetime=float(sys.argv[2]) if len(sys.argv) > 2 else 60)
    print(p.port, flush=True)
    time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 60)
    p.close()
