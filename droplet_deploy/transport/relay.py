"""The toolkit's end of the image relay: the node end (``commands.swarm.RELAY_NODE_END``, in a container on a
node) listens on that node's 127.0.0.1 and sends each connection its engine opens over its stdin/stdout; here
each one is opened to the registry on the manager's 127.0.0.1 and carried both ways.

So a node's engine pulls from ``localhost:<port>`` (no insecure-registry entry: loopback registries are exempt)
through nothing but the way the manager already reaches that engine (its DOCKER_HOST), and the registry listens
on the manager's loopback only. ``Stream`` is the node end's stdin/stdout (a process here, or an exec channel on
the manager's SSH connection); ``connect`` opens a connection to an address the manager reaches (a socket here,
a ``direct-tcpip`` channel over SSH). Nothing in here raises into the caller once the relay is up: a connection
that fails is closed on both ends, which the engine's pull sees and reports.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from droplet_deploy.commands.swarm import RELAY_FRAME

HEAD = struct.Struct(RELAY_FRAME)
OPEN, DATA, CLOSE = 0, 1, 2
CHUNK = 64 * 1024
READY_TIMEOUT = 30.0


class Stream(Protocol):
    def read(self, size: int) -> bytes: ...  # up to size bytes; b"" at the end
    def write(self, data: bytes) -> None: ...
    def error(self) -> str: ...
    def close(self) -> None: ...


class Conn(Protocol):
    def sendall(self, data: bytes) -> None: ...
    def recv(self, size: int) -> bytes: ...
    def shutdown(self, how: int) -> None: ...
    def close(self) -> None: ...


class ProcessStream:
    """A command on this machine, its stdin and stdout as the stream; stderr kept for the failure line."""

    def __init__(self, argv: Sequence[str], cwd: str | None = None):
        self._stderr = tempfile.TemporaryFile()
        # An argv list from commands/, no shell.
        self._proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,  # noqa: S603
                                      stderr=self._stderr, cwd=cwd, bufsize=0)

    def read(self, size: int) -> bytes:
        assert self._proc.stdout is not None
        return self._proc.stdout.read(size)

    def write(self, data: bytes) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(data)

    def error(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()

    def close(self) -> None:
        """End of input: the node end exits and its container goes (``--rm``); that is waited for beside the
        caller, who has nothing more to wait for."""
        with contextlib.suppress(OSError):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        threading.Thread(target=self._reap, name="relay-reap", daemon=True).start()

    def _reap(self) -> None:
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


class ChannelStream:
    """A command on the manager over SSH (an exec channel of the one connection)."""

    def __init__(self, channel):
        self._channel = channel

    def read(self, size: int) -> bytes:
        return self._channel.recv(size)

    def write(self, data: bytes) -> None:
        self._channel.sendall(data)

    def error(self) -> str:
        chunks = []
        while self._channel.recv_stderr_ready():
            chunks.append(self._channel.recv_stderr(CHUNK))
        return b"".join(chunks).decode(errors="replace").strip()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._channel.shutdown_write()
        with contextlib.suppress(Exception):
            self._channel.close()


def local_connect(host: str, port: int) -> Conn:
    sock = socket.create_connection((host, port), timeout=10)
    sock.settimeout(None)
    return sock


class RelayFailed(Exception):
    """The node end did not come up (no python3 in the image, the node's engine refused the container)."""


class Relay:
    """Carries the node end's connections to ``registry`` (host, port) as the manager reaches it."""

    def __init__(self, stream: Stream, connect: Callable[[str, int], Conn], registry: tuple[str, int]):
        self._stream, self._connect, self._registry = stream, connect, registry
        self._write = threading.Lock()
        self._conns: dict[int, Conn] = {}
        self.carried = 0  # bytes from the registry to the node: the layers it lacked, plus the manifests

    def node_port(self) -> int:
        """Wait for the node end's ``PORT <n>`` line; RelayFailed with its error when it never comes."""
        line = b""
        while not line.endswith(b"\n") and len(line) < 64:
            byte = self._stream.read(1)
            if not byte:
                said = self._stream.error().splitlines()
                raise RelayFailed(said[-1] if said else "the node end exited before it listened")
            line += byte
        words = line.split()
        if len(words) != 2 or words[0] != b"PORT" or not words[1].isdigit():
            raise RelayFailed(f"the node end said {line[:60]!r} instead of its port")
        return int(words[1])

    def serve(self) -> None:
        threading.Thread(target=self._from_node, name="relay-from-node", daemon=True).start()

    def _send(self, cid: int, kind: int, data: bytes = b"") -> None:
        # ValueError: the block ended and closed the stream while a connection was still finishing.
        with self._write, contextlib.suppress(OSError, EOFError, ValueError):
            self._stream.write(HEAD.pack(cid, kind, len(data)) + data)

    def _exactly(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self._stream.read(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _from_node(self) -> None:
        with contextlib.suppress(OSError, EOFError):
            while (head := self._exactly(HEAD.size)) is not None:
                cid, kind, size = HEAD.unpack(head)
                data = self._exactly(size) if size else b""
                if data is None:
                    break
                self._dispatch(cid, kind, data)
        for conn in list(self._conns.values()):
            _close(conn)

    def _dispatch(self, cid: int, kind: int, data: bytes) -> None:
        if kind == OPEN:
            try:
                conn = self._connect(*self._registry)
            except Exception:  # the registry refused (paramiko raises several kinds): the node end closes it
                self._send(cid, CLOSE)
                return
            self._conns[cid] = conn
            threading.Thread(target=self._to_node, args=(cid, conn), name="relay-to-node", daemon=True).start()
        elif (known := self._conns.get(cid)) is not None:
            if kind == DATA:
                try:
                    known.sendall(data)
                except OSError:
                    self._drop(cid)
            else:
                self._drop(cid)

    def _to_node(self, cid: int, conn: Conn) -> None:
        with contextlib.suppress(Exception):
            while data := conn.recv(CHUNK):
                self.carried += len(data)
                self._send(cid, DATA, data)
        self._send(cid, CLOSE)
        self._drop(cid)

    def _drop(self, cid: int) -> None:
        conn = self._conns.pop(cid, None)
        if conn is not None:
            _close(conn)


@contextlib.contextmanager
def relayed(stream: Stream, connect: Callable[[str, int], Conn], registry: tuple[str, int]) -> Iterator[tuple[int, Relay]]:
    """The node's 127.0.0.1 port that reaches ``registry``, for the length of the block; the node end stops
    (its stdin closes) when it ends."""
    relay = Relay(stream, connect, registry)
    try:
        port = relay.node_port()
        relay.serve()
        yield port, relay
    finally:
        stream.close()


def _close(conn: Conn) -> None:
    # shutdown first: a close alone leaves the other thread's recv on it waiting (and the peer with it).
    with contextlib.suppress(Exception):
        conn.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        conn.close()
