"""Probes send a Host header the app accepts (deploy.health_host, default localhost), and a 400 that stays a 400
fails within seconds naming that setting. A real HTTP server that checks the Host header as Django's
ALLOWED_HOSTS does."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from droplet_deploy.core import config
from droplet_deploy.core.errors import ConfigError, HealthRejected
from droplet_deploy.steps import health


class HostCheckingApp:
    """Answers 200 to the names it allows, 400 ``Bad Request`` to any other; records the Host headers seen."""

    def __init__(self, allowed: set[str]):
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                host = self.headers.get("Host", "")
                outer.seen.append(host)
                ok = host.split(":")[0] in allowed
                body = b'{"status": "healthy"}' if ok else b"Bad Request (400)"
                self.send_response(200 if ok else 400)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/healthz"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app():
    made = HostCheckingApp({"localhost", "shop.example.com"})
    yield made
    made.close()


def test_the_probe_sends_the_host_it_is_given_and_the_app_accepts_it(app):
    verdict = health.wait(app.url, None, timeout=5, interval=0.05, host="localhost")
    assert verdict.ok and app.seen == ["localhost"]


def test_without_a_host_the_address_is_sent_and_a_host_checking_app_answers_400_at_once(app):
    with pytest.raises(HealthRejected) as rejected:
        health.wait(app.url, None, timeout=30, interval=0.05, settle=0.3)
    assert rejected.value.held < 5, "given up within seconds, not at the 30 s timeout"
    assert "HTTP 400" in rejected.value.last_seen and "health_host" in rejected.value.fix
    assert app.seen[0].startswith("127.0.0.1:")


def test_health_host_defaults_to_localhost_and_is_validated(root):
    raw = {"app_name": "shop", "environments": {"test": {"project": "shop-test"}}}
    assert config.load(raw, "test", root=root).probe_host == "localhost"
    raw["health_host"] = "shop.example.com"
    assert config.load(raw, "test", root=root).probe_host == "shop.example.com"
    raw["health_host"] = "shop example.com; rm"
    with pytest.raises(ConfigError) as bad:
        config.load(raw, "test", root=root)
    assert "health_host" in str(bad.value) and "is not a host name" in str(bad.value)
