"""The SSH tunnel a rollout polls through, over the real test sshd: a refused connection must not end it."""

import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paramiko
import pytest

from droplet_deploy.transport.tunnel import forward
from tests.conftest import free_port
from tests.support.sshd import ensure_sshd_available, running_sshd

pytestmark = pytest.mark.integration


class Ok(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def test_tunnel_keeps_forwarding_after_the_far_end_refused(tmp_path):
    reason = ensure_sshd_available()
    if reason:
        pytest.skip(reason)
    with running_sshd(tmp_path / "sshd") as sshd:
        client = paramiko.SSHClient()
        client.load_host_keys(str(sshd.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(sshd.host, port=sshd.port, username=sshd.user, **sshd.connect_kwargs())
        port = free_port()  # nothing listens here yet, like a container still booting
        try:
            with forward(client.get_transport(), "127.0.0.1", port) as local:
                url = f"http://127.0.0.1:{local}/"
                for _ in range(3):
                    with pytest.raises(OSError):
                        urllib.request.urlopen(url, timeout=5)
                server = ThreadingHTTPServer(("127.0.0.1", port), Ok)
                threading.Thread(target=server.serve_forever, daemon=True).start()
                try:
                    with urllib.request.urlopen(url, timeout=5) as answer:
                        assert (answer.status, answer.read()) == (200, b"ok")
                finally:
                    server.shutdown()
                    server.server_close()
        finally:
            client.close()
