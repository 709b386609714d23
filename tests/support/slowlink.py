"""A slow network link on loopback: a TCP proxy in front of a real server (a registry, the API
server) that holds everything a client sends for `delay` seconds before passing it on.

Only the client -> server direction is slowed, chunk by chunk and in order, so every request
(and every TLS handshake flight) arrives `delay` later; answers come back at once. What is
behind it is untouched: the real registry answers, the real API server checks credentials.
"""

from __future__ import annotations

import socket
import threading
import time


class SlowLink:
    """`SlowLink(upstream_host, upstream_port, delay).start()`; clients connect to `.host`. Always `stop()`."""

    def __init__(self, upstream: tuple[str, int], delay: float):
        self.upstream = upstream
        self.delay = delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.connections = 0  # accepted so far
        self.forwarded = 0  # bytes passed on to the server so far
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> SlowLink:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, to_server: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if to_server:
                    time.sleep(self.delay)
                    with self._lock:
                        self.forwarded += len(data)
                target.sendall(data)
        except OSError:
            pass
        finally:
            try:
                target.shutdown(socket.SHUT_WR)
            except OSError:
                pass
