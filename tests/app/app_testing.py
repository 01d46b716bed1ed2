"""Helpers shared by the app tests (a uniquely named module, so it never clashes with another conftest)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
# The service is not an installed package: make sure `import app` finds it (and not this tests/app folder)
# however pytest was started.
if sys.path[:1] != [str(REPO)]:
    sys.path.insert(0, str(REPO))

from app.server import Service  # noqa: E402

REVISION = "test-rev-0123456789ab"


def base_env(root: Path, **overrides: str) -> dict[str, str]:
    env = {
        "APP_ENV": "test",
        "APP_HOST": "127.0.0.1",
        "APP_REVISION": REVISION,
        "APP_DB_PATH": str(root / "data" / "app.db"),
        "APP_LOG_DIR": str(root / "logs"),
        "APP_DRAIN_SECONDS": "5",
    }
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


@dataclass
class Running:
    service: Service
    url: str
    root: Path

    @property
    def log_path(self) -> Path:
        return Path(self.service.config.log_dir) / "app.log"

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url + path, timeout=10, **kwargs)

    def log_lines(self) -> list[dict]:
        for handler in self.service.log.handlers:
            handler.flush()
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port_url(path: str = "/") -> str:
    """A URL on loopback where nothing listens (connection refused at once)."""
    return f"http://127.0.0.1:{free_port()}{path}"


def subprocess_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """A clean environment: no APP_* leaking in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(overrides)
    return env


def run_app(args: list[str], env: Mapping[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed argv, our own interpreter
        [sys.executable, "-m", "app", *args], cwd=REPO, env=subprocess_env(env),
        capture_output=True, text=True, timeout=timeout,
    )


def raw_exchange(port: int, raw: bytes, timeout: float = 10) -> bytes:
    """Send bytes no HTTP client would send and read the whole answer (the app closes after each request)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer
