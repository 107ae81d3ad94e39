"""The contained child's only way to the database: a Unix socket bound into its sandbox.

The child has no network (its namespace has no interface but its own loopback), so it cannot
reach a server over TCP, and binding the embedded cluster's socket directory would show it the
server's log and lock files. Instead the parent listens on a socket in a directory of its own,
binds that one socket into the sandbox under the name libpq expects
(`<dir>/.s.PGSQL.<port>`), and relays each connection to the real server (TCP or Unix) once the
run knows it. The child learns nothing of where the server is; the server sees an ordinary
client (and its password authentication, connection limits and roles apply as usual).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path

RELAY_PORT = 5432  # names the socket file only
_CHUNK = 64 * 1024
_BACKLOG = 16


class DatabaseRelay:
    """Listens on `socket_path`; relays each connection to `target` (set by `connect_to`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.socket_path = directory / f".s.PGSQL.{RELAY_PORT}"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.socket_path))
        self.socket_path.chmod(0o666)  # the child's own uid connects; only it can see the path
        self._listener.listen(_BACKLOG)
        self._target: tuple[str, str | int] | None = None
        self._closed = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="migsafe-db-relay", daemon=True).start()

    def connect_to(self, host: str, port: int) -> None:
        """The server behind the relay: a socket directory (libpq's `host=/dir`) or a host."""
        self._target = (host, port)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for each in list(self._open):
                with contextlib.suppress(OSError):
                    each.close()
            self._open.clear()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._serve, args=(client,), name="migsafe-db-relay-conn", daemon=True
            ).start()

    def _serve(self, client: socket.socket) -> None:
        target = self._target
        if target is None:
            client.close()
            return
        try:
            server = _connect(*target)
        except OSError:
            client.close()
            return
        with self._lock:
            if self._closed.is_set():
                client.close()
                server.close()
                return
            self._open |= {client, server}
        threading.Thread(target=self._pump, args=(server, client), daemon=True).start()
        self._pump(client, server)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(_CHUNK):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for each in (source, sink):
                with contextlib.suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)
                with self._lock:
                    if each in self._open:
                        self._open.discard(each)
                        each.close()


def _connect(host: str, port: str | int) -> socket.socket:
    if host.startswith("/"):
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            unix.connect(str(Path(host) / f".s.PGSQL.{port}"))
        except OSError:
            unix.close()
            raise
        return unix
    tcp = socket.create_connection((host, int(port)), timeout=10)
    tcp.settimeout(None)  # the timeout was for connecting: an idle session must stay up
    return tcp
