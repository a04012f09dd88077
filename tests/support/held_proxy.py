"""A TCP proxy on loopback that can hold what a client sends: the writes a process had already
sent when it froze, delivered to the server only later (a write delayed in the network), which
only the server's own check can refuse."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class HeldProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; after ``hold(markers)``, a chunk a client
    sends that contains every marker waits, unsent, until ``release()`` (and what that client
    sends after it on the same connection waits behind it); the rest goes on."""

    target: tuple[str, int]
    port: int = 0
    held: list[bytes] = field(default_factory=list)
    _markers: tuple[bytes, ...] = ()
    _open: threading.Event = field(default_factory=threading.Event)
    _listener: socket.socket | None = None
    _sockets: list[socket.socket] = field(default_factory=list)

    def start(self) -> HeldProxy:
        self._open.set()
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener = listener
        self.port = listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def hold(self, *markers: bytes) -> None:
        self._markers = markers
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def holds(self) -> bool:
        """Whether a chunk is held now."""
        return bool(self.held)

    def stop(self) -> None:
        self._open.set()
        for sock in [self._listener, *self._sockets]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, gated: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if gated and not self._open.is_set() and all(m in data for m in self._markers):
                    self.held.append(data)
                    self._open.wait()
                    self.held.remove(data)
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def held_proxy(host: str, port: int) -> Iterator[HeldProxy]:
    proxy = HeldProxy((host, port)).start()
    try:
        yield proxy
    finally:
        proxy.stop()
