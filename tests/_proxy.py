"""A TCP proxy on 127.0.0.1 that breaks connections on command.

Tests put it between a saver and a throwaway PostgreSQL server:

* :meth:`Proxy.cut_all` closes every open connection (both sides) at once;
* :meth:`Proxy.drop_after` arms a trap: the next client message containing a
  byte pattern (e.g. ``b"COMMIT"`` or ``b"INSERT INTO"``) is forwarded to the
  server and then the connection is cut before any reply can come back, which
  is the "in-doubt" case: the server may have committed, the client cannot know;
* :attr:`Proxy.down` makes new connections fail at once (an outage).

One thread accepts; two threads per connection copy bytes each way.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class Proxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target``."""

    def __init__(self, target: int) -> None:
        self.target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._trap: bytes | None = None
        self.sprung = threading.Event()
        self.down = False
        self.accepted = 0
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def url(self, dbname: str = "postgres", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}" + (
            f"?{query}" if query else ""
        )

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                # Without it Nagle's algorithm holds back small pipelined
                # messages for ~40 ms, and every test runs ten times slower.
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            pair = (client, upstream)
            threading.Thread(
                target=self._pump, args=(client, upstream, pair, True), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, pair, False), daemon=True
            ).start()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        pair: tuple[socket.socket, socket.socket],
        from_client: bool,
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if from_client and self._trap is not None and self._trap in data:
                    with self._lock:
                        hit = self._trap is not None
                        self._trap = None
                    if hit:
                        self._close(pair)
                        self.sprung.set()
                        return
        except OSError:
            pass
        self._close(pair)

    def _close(self, pair: tuple[socket.socket, socket.socket]) -> None:
        for s in pair:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)

    def cut_all(self) -> int:
        """Close every open connection; returns how many were cut."""
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            self._close(pair)
        return len(pairs)

    def drop_after(self, pattern: bytes) -> None:
        """Cut the connection right after forwarding the next message containing ``pattern``."""
        self.sprung.clear()
        with self._lock:
            self._trap = pattern

    def close(self) -> None:
        self._closed = True
        self._server.close()
        self.cut_all()
