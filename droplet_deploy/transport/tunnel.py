"""A local port forwarded over an open SSH transport to an address the host can reach (``direct-tcpip``).

Fabric's ``forward_local`` stops forwarding for good at the first connection the far end refuses, and raises a
thread traceback when the block ends. A rollout polls a container that is still booting, so refusals are the
normal case: here a refused connection is closed on our side, which the HTTP client sees as a connection error
and retries, and the tunnel keeps serving the next one. The listener is bound before the port is handed out
(``forward_local`` binds in its thread after returning, so a first request could race it), on a port the kernel
chose. Nothing in here raises into the caller.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterator

CHUNK = 32 * 1024
OPEN_TIMEOUT = 10.0


@contextlib.contextmanager
def forward(transport, remote_host: str, remote_port: int) -> Iterator[int]:
    """Listen on 127.0.0.1 (a free port, returned) and carry each connection to remote_host:remote_port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()
    open_pairs: list[tuple[socket.socket, object]] = []
    lock = threading.Lock()

    def pump(sock: socket.socket, channel) -> None:
        try:
            while not stop.is_set():
                readable, _, _ = select.select([sock, channel], [], [], 0.2)
                if sock in readable:
                    data = sock.recv(CHUNK)
                    if not data:
                        break
                    channel.sendall(data)
                if channel in readable:
                    data = channel.recv(CHUNK)
                    if not data:
                        break
                    sock.sendall(data)
        except (OSError, EOFError):
            pass  # either side went away: closing both below is all there is to do
        finally:
            _close(sock, channel)

    def accept() -> None:
        while not stop.is_set():
            readable, _, _ = select.select([listener], [], [], 0.1)
            if not readable:
                continue
            try:
                sock, peer = listener.accept()
            except OSError:
                continue
            try:
                channel = transport.open_channel("direct-tcpip", (remote_host, remote_port), peer,
                                                 timeout=OPEN_TIMEOUT)
            except Exception:  # refused or unreachable far end (paramiko raises several kinds): drop this one
                _close(sock)
                continue
            with lock:
                open_pairs.append((sock, channel))
            threading.Thread(target=pump, args=(sock, channel), name="tunnel-pump", daemon=True).start()

    acceptor = threading.Thread(target=accept, name="tunnel-accept", daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        acceptor.join(timeout=2)
        _close(listener)
        with lock:
            for sock, channel in open_pairs:
                _close(sock, channel)


def _close(*things) -> None:
    for thing in things:
        with contextlib.suppress(Exception):
            thing.close()
