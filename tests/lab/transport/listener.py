# Copyright: Contributors to the exchange.pki project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Listening sockets on 127.0.0.1 served by one accept loop and a fixed pool of connection threads.

A fleet of 100 servers has about 500 listening ports; one selector thread accepts on all of them and
hands each connection to a pooled worker that serves it until it closes (HTTP keep-alive included),
so no thread is created per request or per port.
"""

from __future__ import annotations

import logging
import selectors
import socket
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

LOG = logging.getLogger(__name__)

ConnectionHandler = Callable[[socket.socket, tuple[str, int]], None]


def bind_local() -> socket.socket:
    """A listening TCP socket on 127.0.0.1 with a port chosen by the OS."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def reset_on_close(sock: socket.socket) -> None:
    """Make the coming close send a TCP reset: the peer sees 'connection reset', not a clean end."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


class Acceptor:
    """Accepts on many listening sockets and serves each connection in a pooled thread."""

    def __init__(self, workers: int = 256) -> None:
        self._selector = selectors.DefaultSelector()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lab-conn")
        self._wake_read, self._wake_write = socket.socketpair()
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._loop, name="lab-accept", daemon=True)
        self._stopping = threading.Event()
        self._listeners: list[socket.socket] = []
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()

    def listen(self, handler: ConnectionHandler) -> int:
        """Open a new port served by ``handler``; return the port number."""
        sock = bind_local()
        self._listeners.append(sock)
        self._selector.register(sock, selectors.EVENT_READ, handler)
        return int(sock.getsockname()[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close every listener and wait for running connections to end."""
        self._stopping.set()
        self._wake_write.send(b"x")
        if self._thread.is_alive():
            self._thread.join()
        for sock in self._listeners:
            sock.close()
        with self._active_lock:
            for conn in self._active:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._wake_read.close()
        self._wake_write.close()
        self._selector.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            for key, _events in self._selector.select():
                if key.data is None:
                    continue
                try:
                    conn, address = key.fileobj.accept()  # type: ignore[union-attr]
                except (BlockingIOError, InterruptedError):
                    continue
                conn.setblocking(True)
                self._pool.submit(self._serve, key.data, conn, address)

    def _serve(self, handler: ConnectionHandler, conn: socket.socket, address: tuple[str, int]) -> None:
        watch = conn.dup()  # stays valid when a TLS wrapper takes over ``conn``; shutdown() reaches both
        with self._active_lock:
            self._active.add(watch)
        try:
            handler(conn, address)
        except Exception:  # noqa: BLE001 - one broken connection must not stop the listener
            LOG.exception("connection from %s failed", address)
        finally:
            with self._active_lock:
                self._active.discard(watch)
            watch.close()
            conn.close()
