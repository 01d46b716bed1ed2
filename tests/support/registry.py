"""A real Docker registry on 127.0.0.1 for tests: ``local/registry:2`` (Debian's docker-registry 2.8, built
offline by scripts/bootstrap) with its storage on a named volume.

Usage::

    with running_registry() as registry:
        ref = registry.ref("app", "abc123")              # "localhost:<port>/app:abc123"
        subprocess.run(["docker", "tag", image, ref], check=True)
        subprocess.run(["docker", "push", ref], check=True)

The container publishes 5000 on ``127.0.0.1:<port the engine picks>`` only, so nothing off this host reaches
it, and an engine pushes to ``localhost:<port>`` without an insecure-registry entry (loopback registries are
exempt). The container and its volume are removed when the block ends, unless the volume was passed in (then
it is the caller's, e.g. to show the images survive a recreated registry).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import requests

IMAGE = os.environ.get("TEST_REGISTRY_IMAGE", "local/registry:2")
START_TIMEOUT = 30.0
DOCKER_TIMEOUT = 300.0


def unique_name(prefix: str = "test-registry") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ensure_registry_available(image: str = IMAGE) -> str | None:
    """Return why the registry image cannot run here, or None (raises in CI, where bootstrap builds it)."""
    if docker("image", "inspect", "--format", "{{.Id}}", image, check=False).returncode == 0:
        return None
    reason = f"{image} is not built; scripts/bootstrap builds it offline"
    if os.environ.get("CI"):
        raise RuntimeError(f"{reason}. CI must run the registry tests, not skip them.")
    return reason


@dataclass(frozen=True, kw_only=True)
class RegistryHandle:
    name: str
    volume: str
    port: int

    @property
    def host(self) -> str:
        """The registry part of an image reference: ``localhost:<port>``."""
        return f"localhost:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ref(self, repository: str, tag: str) -> str:
        return f"{self.host}/{repository}:{tag}"

    def catalog(self) -> list[str]:
        response = requests.get(f"{self.url}/v2/_catalog", timeout=10)
        response.raise_for_status()
        return response.json()["repositories"] or []

    def tags(self, repository: str) -> list[str]:
        response = requests.get(f"{self.url}/v2/{repository}/tags/list", timeout=10)
        response.raise_for_status()
        return sorted(response.json()["tags"] or [])

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr


class RegistryError(RuntimeError):
    pass


@contextlib.contextmanager
def running_registry(*, name: str | None = None, volume: str | None = None,
                     image: str = IMAGE) -> Iterator[RegistryHandle]:
    """Start the registry on 127.0.0.1:<free port>, wait for ``/v2/``, remove it (and an own volume) on exit."""
    name = name or unique_name()
    own_volume = volume is None
    volume = volume or unique_name("test-registry-data")
    if own_volume:
        docker("volume", "create", volume)
    try:
        docker("run", "-d", "--name", name, "--label", "org.droplet-deploy.test=registry",
               "-p", "127.0.0.1::5000", "-v", f"{volume}:/var/lib/registry", image)
        try:
            binding = docker("port", name, "5000/tcp").stdout.split()[0]
            handle = RegistryHandle(name=name, volume=volume, port=int(binding.rsplit(":", 1)[1]))
            _wait(handle)
            yield handle
        finally:
            docker("rm", "-f", "-v", name, check=False)
    finally:
        if own_volume:
            docker("volume", "rm", "-f", volume, check=False)


def docker(*argv: str, check: bool = True, timeout: float = DOCKER_TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise RegistryError(f"docker {' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def _wait(handle: RegistryHandle) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "not probed yet"
    while time.monotonic() < deadline:
        state = docker("inspect", "--format", "{{.State.Status}}", handle.name, check=False).stdout.strip()
        if state != "running":
            raise RegistryError(f"{handle.name} is {state or 'gone'}\n{handle.logs()[-3000:]}")
        try:
            response = requests.get(f"{handle.url}/v2/", timeout=1)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RegistryError(f"{handle.name} did not answer /v2/ within {START_TIMEOUT:.0f}s (last: {last})\n"
                        f"{handle.logs()[-3000:]}")
