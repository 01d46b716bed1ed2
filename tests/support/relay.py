"""A TCP relay on 127.0.0.1 in front of a server, that can go silent: a half-open connection made real.

``freeze()`` stops carrying bytes either way but keeps both sockets open, as a NAT that forgot the connection, a
frozen host or a pulled cable do: the client's writes still succeed (into its socket buffer) and nothing ever
comes back, and no error arrives until TCP gives up many minutes later.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator


class Relay:
    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frozen = threading.Event()
        self.stopped = threading.Event()
        self.sockets: list[socket.socket] = []

    def freeze(self) -> None:
        self.frozen.set()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                if not select.select([self.listener], [], [], 0.1)[0]:
                    continue
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        while not self.stopped.is_set():
            if self.frozen.is_set():
                self.stopped.wait(0.1)
                continue
            for ready in select.select([a, b], [], [], 0.1)[0]:
                data = ready.recv(65536)
                if not data:
                    return
                peer[ready].sendall(data)

    def close(self) -> None:
        self.stopped.set()
        for sock in [self.listener, *self.sockets]:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def relay_to(port: int) -> Iterator[Relay]:
    relay = Relay(port)
    thread = threading.Thread(target=relay._accept, daemon=True)
    thread.start()
    try:
        yield relay
    finally:
        relay.close()
