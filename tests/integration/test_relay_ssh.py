"""The image relay with the manager over SSH (the real test sshd in front of this machine): the node end runs as
a command on the manager over the one connection, and each connection it carries reaches the "registry" on the
manager's 127.0.0.1 as a ``direct-tcpip`` channel of that same connection. On a cluster the node end's command
is ``docker --host <node> run ...`` on the manager; here it is the same script in python3 on the host."""

from __future__ import annotations

import http.server
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import fabric
import pytest

from droplet_deploy.commands import swarm as cmd
from droplet_deploy.transport.relay import relayed
from droplet_deploy.transport.target import SshTarget

pytestmark = pytest.mark.integration

BLOB = bytes(range(256)) * 2048  # 512 KiB, every byte value


class _Registry(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        body = BLOB if self.path == "/blob" else self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def target(sshd, tmp_path):
    connection = fabric.Connection(sshd.alias, config=sshd.fabric_config(), connect_kwargs=sshd.connect_kwargs())
    found = SshTarget(connection, str(tmp_path), echo=False)
    yield found
    found.close()


def test_the_relay_carries_pulls_over_the_one_ssh_connection(target, sshd):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    logins_before = sshd.log.read_text(errors="replace").count("Accepted publickey")
    try:
        stream = target.duplex([sys.executable, "-c", cmd.RELAY_NODE_END])
        with relayed(stream, target.connect, ("127.0.0.1", server.server_address[1])) as (port, relay):
            with ThreadPoolExecutor(3) as pool:
                answers = list(pool.map(lambda path: urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                                                             timeout=20).read(),
                                        ["/blob", "/v2/", "/blob"]))
            assert answers == [BLOB, b"/v2/", BLOB]
            assert relay.carried >= 2 * len(BLOB)
    finally:
        server.shutdown()
        server.server_close()
    logins = sshd.log.read_text(errors="replace").count("Accepted publickey") - logins_before
    assert logins <= 1, "the node end and every carried connection share the one connection"
