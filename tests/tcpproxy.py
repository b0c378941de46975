"""A loopback TCP proxy a test can cut: a partition of one client from its server.

Each member of an HA pair reaches PostgreSQL through a proxy of its own, so a test cuts one
member off while the other and the server carry on. cut() closes every connection through
the proxy at once (the server sees the client go, so the session and its advisory locks end
with it; the client sees its connection broken) and refuses new ones until restore().
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """127.0.0.1:<port> forwarding to 127.0.0.1:<target_port>; every thread joined on close()."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        self.refusing = False
        self.connections = 0
        self._start(self._accept)

    def cut(self) -> None:
        """Break every connection now and refuse new ones (until restore())."""
        with self._lock:
            self.refusing = True
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _hang_up(sock)

    def restore(self) -> None:
        with self._lock:
            self.refusing = False

    def close(self) -> None:
        self.cut()
        self._closed.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.refusing:
                _hang_up(client)
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _hang_up(client)
                continue
            server.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if self.refusing:
                    _hang_up(client)
                    _hang_up(server)
                    continue
                self._sockets |= {client, server}
                self.connections += 1
            self._start(self._pump, client, server)
            self._start(self._pump, server, client)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets -= {source, sink}
            _hang_up(source)
            _hang_up(sink)


def _hang_up(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
