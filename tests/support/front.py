"""Clients for the front proxy tests: requests by host name to a proxy on 127.0.0.1, over HTTP (Host header) or
HTTPS (SNI, verified against a test CA's root), and the fixed-rate load of ``load.py`` sent that way."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .load import Load, Sample, _revision_of

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Answer:
    status: int | None
    headers: dict[str, str]
    body: str
    error: str | None = None


class _Pinned(http.client.HTTPSConnection):
    """HTTPS to ``address`` while the name (SNI, certificate check, Host header) is the one given."""

    def __init__(self, name: str, port: int, address: str, context: ssl.SSLContext, timeout: float):
        super().__init__(name, port, context=context, timeout=timeout)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def connection(name: str, port: int, *, root: Path | None, timeout: float = 5.0) -> http.client.HTTPConnection:
    if root is None:
        plain = http.client.HTTPConnection(HOST, port, timeout=timeout)
        return plain
    return _Pinned(name, port, HOST, ssl.create_default_context(cafile=str(root)), timeout)


def get(name: str, port: int, path: str = "/", *, root: Path | None = None, timeout: float = 5.0) -> Answer:
    """One GET of ``path`` on ``name`` (HTTPS when ``root`` is given), never following a redirect."""
    conn = connection(name, port, root=root, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": f"{name}:{port}", "Connection": "close", "User-Agent": "front-test"})
        response = conn.getresponse()
        body = response.read(256 * 1024).decode(errors="replace")
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, {}, "", f"{type(exc).__name__}: {exc}"[:200])
    finally:
        conn.close()


def wait_get(name: str, port: int, path: str = "/", *, root: Path | None = None, status: int = 200,
             timeout: float = 30.0) -> Answer:
    deadline = time.monotonic() + timeout
    answer = get(name, port, path, root=root)
    while answer.status != status and time.monotonic() < deadline:
        time.sleep(0.3)
        answer = get(name, port, path, root=root)
    return answer


def served_certificate(name: str, port: int, root: Path) -> x509.Certificate:
    context = ssl.create_default_context(cafile=str(root))
    with socket.create_connection((HOST, port), timeout=5) as raw, context.wrap_socket(raw, server_hostname=name) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


class NamedLoad(Load):
    """``Load`` sent to ``name`` on the front proxy's port: HTTPS with SNI when ``root`` is given."""

    def __init__(self, name: str, port: int, path: str, *, root: Path | None, rate: float = 20.0,
                 max_seconds: float = 300.0, timeout: float = 5.0):
        super().__init__(f"http://{HOST}:{port}{path}", rate=rate, max_seconds=max_seconds, timeout=timeout)
        self.name, self.root = name, root

    def _one(self, sent: float) -> None:
        conn = connection(self.name, self.port, root=self.root, timeout=self.timeout)
        status = error = revision = None
        try:
            conn.request("GET", self.path, headers={"Host": f"{self.name}:{self.port}", "Connection": "close",
                                                    "User-Agent": "load-check"})
            response = conn.getresponse()
            status, revision = response.status, _revision_of(response.read(64 * 1024))
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            conn.close()
        sample = Sample(sent, time.monotonic() - self._started, status, error, revision)
        with self._lock:
            self._samples.append(sample)
