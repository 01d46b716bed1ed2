"""The image relay's two ends, for real on this machine: the node end (``RELAY_NODE_END``) in a python3 process,
the toolkit's end (``transport.relay``) carrying each connection to an HTTP server standing in for the registry.
On a cluster the node end runs in a container on the node (``docker --host ... run``); the bytes are the same."""

from __future__ import annotations

import http.server
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from droplet_deploy.commands import swarm as cmd
from droplet_deploy.transport.relay import ProcessStream, RelayFailed, local_connect, relayed

BLOB = bytes(range(256)) * 4096  # 1 MiB, every byte value


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
def registry():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _node_end():
    return ProcessStream([sys.executable, "-c", cmd.RELAY_NODE_END])


def test_connections_to_the_node_port_reach_the_registry_intact_and_concurrently(registry):
    with relayed(_node_end(), local_connect, ("127.0.0.1", registry)) as (port, relay):
        assert port != registry
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda path: urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                                                         timeout=10).read(),
                                    ["/blob", "/v2/a", "/blob", "/v2/b"]))
        assert answers == [BLOB, b"/v2/a", BLOB, b"/v2/b"]
        assert 2 * len(BLOB) < relay.carried < 2 * len(BLOB) + 4096, "what it carried: the bodies and headers"


def test_a_refused_registry_closes_the_nodes_connection_and_the_relay_keeps_serving(registry):
    with relayed(_node_end(), local_connect, ("127.0.0.1", 1)) as (port, _relay):
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=10)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=10)


def test_a_node_end_that_cannot_start_says_why():
    stream = ProcessStream([sys.executable, "-c", "import sys; sys.exit('python3: not found')"])
    with pytest.raises(RelayFailed, match="python3: not found"):
        with relayed(stream, local_connect, ("127.0.0.1", 1)):
            pass


def test_the_node_end_stops_when_the_relay_ends(registry):
    stream = _node_end()
    with relayed(stream, local_connect, ("127.0.0.1", registry)) as (port, _relay):
        pass
    assert stream._proc.wait(timeout=10) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)
