"""An S3 endpoint on 127.0.0.1 for tests: moto in server mode (the ``moto[server]`` dev extra).

Usage::

    with running_s3(tmp_path) as s3:
        client = s3.client()                     # a boto3 S3 client pointed at it
        client.create_bucket(Bucket="backups")
        subprocess.run([...], env={**os.environ, **s3.env()})   # any other AWS client: the same endpoint

The server runs as ``python -m moto.server`` with this interpreter on a free loopback port, in a process
group of its own, and is stopped when the block ends. It keeps everything in memory (nothing on disk);
``s3.reset()`` empties it between tests. ``s3.env()`` holds fake credentials, a region and the endpoint
(``AWS_ENDPOINT_URL``, honoured by boto3 >= 1.28 and the AWS CLI v2), so no real account can be reached.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
ACCESS_KEY = "testing"
SECRET_KEY = "testing"  # noqa: S105 - moto accepts any credentials; these only keep real ones out
REGION = "us-east-1"


def ensure_s3_available() -> str | None:
    """Return why the S3 server cannot run here, or None (raises in CI, where the dev extra installs it)."""
    missing = [name for name in ("moto", "flask", "boto3") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    reason = f"{', '.join(missing)} not installed: `pip install -e '.[dev]'` installs moto[server] and boto3"
    if os.environ.get("CI"):
        raise RuntimeError(f"{reason}. CI must run the S3 tests, not skip them.")
    return reason


@dataclass(frozen=True, kw_only=True)
class S3Handle:
    endpoint_url: str
    port: int
    log: Path

    def env(self) -> dict[str, str]:
        """Environment for an AWS client (boto3, AWS CLI) to use this endpoint with fake credentials."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            # No ~/.aws of whoever runs the tests.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def client(self, **kwargs: Any):
        """A boto3 S3 client for this endpoint (path-style addressing: bucket names need no DNS)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
            **kwargs,
        )

    def reset(self) -> None:
        """Drop every bucket and object (moto's own reset endpoint)."""
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()


@contextlib.contextmanager
def running_s3(workdir: Path) -> Iterator[S3Handle]:
    """Start moto's server on a free loopback port, yield its handle, stop it on exit (also on errors)."""
    reason = ensure_s3_available()
    if reason:
        raise RuntimeError(reason)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "moto.log"
    last = ""
    for _ in range(3):
        port = _free_port()
        proc = _spawn(port, log)
        handle = S3Handle(endpoint_url=f"http://{HOST}:{port}", port=port, log=log)
        try:
            _wait(proc, handle)
        except _PortTaken as exc:
            _stop(proc)
            last = str(exc)
            continue
        except BaseException:
            _stop(proc)
            raise
        try:
            yield handle
        finally:
            _stop(proc)
        return
    raise RuntimeError(f"moto server could not bind a port: {last}\n{_tail(log)}")


# --- internals --------------------------------------------------------------------------------------


class _PortTaken(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _spawn(port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _wait(proc: subprocess.Popen[bytes], handle: S3Handle) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "not probed yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if "Address already in use" in _tail(handle.log):
                raise _PortTaken(f"port {handle.port} already in use")
            raise RuntimeError(f"moto server exited with status {proc.returncode}\n{_tail(handle.log)}")
        try:
            response = requests.get(f"{handle.endpoint_url}/moto-api/data.json", timeout=1)
            if response.ok:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"moto server on {handle.endpoint_url} not ready within {START_TIMEOUT:.0f}s "
                       f"(last: {last})\n{_tail(handle.log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(log: Path, lines: int = 20) -> str:
    if not log.exists():
        return "(no moto log)"
    return "--- moto log tail ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
