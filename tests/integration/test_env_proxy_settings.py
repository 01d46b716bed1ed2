"""The environment's own nginx (the toolkit's proxy, added by the override to a compose file that has none) on the
real engine: an upload above nginx's 1 MB default passes and one above ``max_body_mb`` gets 413, a slow answer past
``read_timeout`` gets 504, a websocket-style Upgrade reaches the app and the connection then carries bytes both
ways, and the scheme and client address a front proxy on this host sends reach the app.

The app is a small stdlib server written here that reports what reached it (headers, body size) and answers an
Upgrade with 101 and then echoes raw bytes, as a websocket server's handshake and frames would pass through."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from tests.conftest import BASE_IMAGE

pytestmark = pytest.mark.integration

SERVER = '''\
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, code, data):
        body = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.headers.get("Upgrade"):
            self.send_response(101)
            self.send_header("Upgrade", self.headers["Upgrade"])
            self.send_header("Connection", "Upgrade")
            self.send_header("X-Seen-Connection", self.headers.get("Connection", ""))
            self.end_headers()
            self.wfile.flush()
            data = self.rfile.read1(1024)
            self.wfile.write(b"echo:" + data)
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/slow/"):
            time.sleep(float(self.path.rsplit("/", 1)[1]))
        self.answer(200 if self.path != "/missing" else 404, {k.lower(): v for k, v in self.headers.items()})

    def do_POST(self):
        size = int(self.headers.get("Content-Length", "0"))
        read = 0
        while read < size:
            read += len(self.rfile.read(min(65536, size - read)))
        self.answer(200, {"received": read})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    if "--check" in sys.argv:
        print("echo app ok: 3 routes")
        sys.exit(0)
    server = ThreadingHTTPServer(("0.0.0.0", 8000), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
'''

DOCKERFILE = '''\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY echo/ /srv/app/
ARG REVISION=unknown
LABEL org.opencontainers.image.revision="$REVISION"
USER 10001:10001
EXPOSE 8000
CMD ["python3", "/srv/app/server.py"]
'''

# The user's file, with no proxy of its own: the toolkit's override adds one, publishing where the app did.
COMPOSE = '''\
services:
  app:
    build:
      context: .
      dockerfile: Dockerfile.echo
    ports:
      - "127.0.0.1:8000:8000"
'''


@pytest.fixture
def echo_app(project):
    project.write("echo/server.py", SERVER)
    project.write("Dockerfile.echo", DOCKERFILE)
    project.write("docker-compose.echo.yml", COMPOSE)
    project.commit("an app that reports what reaches it")
    project.configure(dockerfile="Dockerfile.echo", health_path="/up", check_endpoints=["/up"],
                      check_command=["python3", "/srv/app/server.py", "--check"], build_args={"BASE_IMAGE": BASE_IMAGE},
                      environments={"test": {"compose_file": "docker-compose.echo.yml", "max_body_mb": 4,
                                             "read_timeout": 2}})
    project.inv("deploy.test")
    return project


def upgrade(port: int) -> tuple[str, bytes]:
    """A websocket-style handshake through the proxy, then bytes sent and the answer read on the same socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /socket HTTP/1.1\r\nHost: shop.example.com\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, f"the proxy closed the connection after {head!r}"
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        sock.sendall(b"ping")
        while len(rest) < len(b"echo:ping"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            rest += chunk
        return head.decode(), rest


def test_uploads_slow_answers_and_upgrades_pass_the_environments_nginx(echo_app):
    url = echo_app.url
    assert requests.get(url + "/up", timeout=5).status_code == 200
    # 3 MB: nginx's own default (1 MB) would answer 413; max_body_mb is 4.
    big = requests.post(url + "/upload", data=b"x" * (3 * 1024 * 1024), timeout=30)
    assert big.status_code == 200 and big.json() == {"received": 3 * 1024 * 1024}
    too_big = requests.post(url + "/upload", data=b"x" * (5 * 1024 * 1024), timeout=30)
    assert too_big.status_code == 413 and "nginx" in too_big.text  # refused by the proxy, not the app

    assert requests.get(url + "/slow/0.5", timeout=10).status_code == 200
    slow = requests.get(url + "/slow/4", timeout=10)
    assert slow.status_code == 504, "read_timeout is 2 s: nginx gives up before the app's 4 s answer"

    head, echoed = upgrade(echo_app.port)
    status, *lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    assert status.startswith("HTTP/1.1 101"), head
    assert headers["upgrade"] == "websocket" and headers["x-seen-connection"].lower() == "upgrade"
    assert echoed == b"echo:ping"


def test_the_front_proxys_scheme_and_the_clients_address_reach_the_app(echo_app):
    url = echo_app.url
    # As the front proxy (Caddy, on this host) sends it after TLS: from here, the scheme is passed on.
    behind_tls = requests.get(url + "/headers", headers={"X-Forwarded-Proto": "https",
                                                        "X-Forwarded-For": "203.0.113.7"}, timeout=5).json()
    assert behind_tls["x-forwarded-proto"] == "https"
    first, *peers = [part.strip() for part in behind_tls["x-forwarded-for"].split(",")]
    assert first == "203.0.113.7" and len(peers) == 1  # the client first, then the peer nginx saw
    plain = requests.get(url + "/headers", timeout=5).json()
    assert plain["x-forwarded-proto"] == "http" and plain["x-forwarded-for"] == peers[0]
    # A value other than a scheme is never passed on.
    odd = requests.get(url + "/headers", headers={"X-Forwarded-Proto": "javascript"}, timeout=5).json()
    assert odd["x-forwarded-proto"] == "http"
    assert json.dumps(odd).count("javascript") == 0


def test_a_changed_limit_reaches_the_running_proxy_at_the_next_deploy(echo_app):
    url = echo_app.url
    assert requests.post(url + "/upload", data=b"x" * (5 * 1024 * 1024), timeout=30).status_code == 413
    echo_app.configure(environments={"test": {"max_body_mb": 8}})
    echo_app.write("CHANGES.md", "uploads up to 8 MB\n")
    echo_app.commit("a larger upload limit")
    echo_app.inv("deploy.test")
    bigger = requests.post(url + "/upload", data=b"x" * (5 * 1024 * 1024), timeout=30)
    assert bigger.status_code == 200 and bigger.json() == {"received": 5 * 1024 * 1024}
