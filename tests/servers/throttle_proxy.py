"""A TCP proxy that behaves like a slow network link, for tests and benchmarks.

    with ThrottlingProxy(upstream_port) as proxy:      # 127.0.0.1:<proxy.port> -> 127.0.0.1:<upstream_port>
        proxy.set(rate=50_000, latency_s=0.3)         # server->client at 50 kB/s, each byte 0.3 s late
        proxy.set(rate=None, latency_s=0.0)           # back to full speed (applies to open connections too)

Only the server->client direction (the video) is shaped. Its queue is bounded, so a slow link pushes
back on the server through TCP as a real one does, instead of buffering the stream in the proxy. Every
thread is joined by close() (the HA test plugin fails tests that leave threads running).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time

_CHUNK = 4096
_QUEUE = 16  # chunks in flight inside the proxy (64 KiB): about one socket buffer


class ThrottlingProxy:
    def __init__(self, upstream_port: int, *, rate: float | None = None, latency_s: float = 0.0) -> None:
        self.upstream_port = upstream_port
        self.rate = rate  # bytes per second server->client; None: unlimited
        self.latency_s = latency_s
        self.bytes_down = 0
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []

    def set(self, *, rate: float | None, latency_s: float = 0.0) -> None:
        self.rate, self.latency_s = rate, latency_s

    def __enter__(self) -> ThrottlingProxy:
        self._spawn(self._accept, "throttle-proxy-accept")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()  # nothing upstream: the client sees the connection closed, as with a dead server
                continue
            with self._lock:
                self._sockets += [client, upstream]
                self.connections += 1
            chunks: queue.Queue[tuple[float, bytes] | None] = queue.Queue(_QUEUE)
            self._spawn(self._pump, "throttle-proxy-up", client, upstream)
            self._spawn(self._read_down, "throttle-proxy-down-read", upstream, chunks)
            self._spawn(self._write_down, "throttle-proxy-down-write", client, chunks)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Client->server, unshaped (requests are small)."""
        src.settimeout(0.1)
        try:
            while not self._closing.is_set():
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._shut(src, dst)

    def _read_down(self, src: socket.socket, chunks: queue.Queue[tuple[float, bytes] | None]) -> None:
        src.settimeout(0.1)
        try:
            while not self._closing.is_set():
                try:
                    data = src.recv(_CHUNK)
                except TimeoutError:
                    continue
                if not data:
                    break
                while not self._closing.is_set():
                    try:
                        chunks.put((time.monotonic() + self.latency_s, data), timeout=0.1)
                        break
                    except queue.Full:
                        continue  # the link is slower than the server: TCP pushes back on it
        except OSError:
            pass
        finally:
            while not self._closing.is_set():
                try:
                    chunks.put(None, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def _write_down(self, dst: socket.socket, chunks: queue.Queue[tuple[float, bytes] | None]) -> None:
        next_free = time.monotonic()
        try:
            while not self._closing.is_set():
                try:
                    item = chunks.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is None:
                    break
                due, data = item
                rate = self.rate
                send_at = max(due, next_free if rate else 0.0)
                while (wait := send_at - time.monotonic()) > 0 and not self._closing.is_set():
                    time.sleep(min(wait, 0.1))
                dst.sendall(data)
                self.bytes_down += len(data)
                next_free = max(time.monotonic(), next_free) + (len(data) / rate if rate else 0.0)
        except OSError:
            pass
        finally:
            self._shut(dst)

    @staticmethod
    def _shut(*socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        self._shut(*sockets)
        for thread in threads:
            thread.join(timeout=5)
        for sock in sockets:
            sock.close()
