"""The manager's image registry: one container per stack (``<stack>-image-registry``), port 5000 published on
the manager's 127.0.0.1 only, its blobs on a volume of the same name, so a release pushes only the layers the
registry lacks. It is started when missing and left running for the next release; nothing else is deleted.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from droplet_deploy.commands import swarm as cmd
from droplet_deploy.transport.target import Target

READY_TIMEOUT = 20.0


@dataclass(frozen=True)
class ImageRegistry:
    stack: str
    image: str  # the registry's own image (``swarm_registry_image``)

    @property
    def name(self) -> str:
        return f"{self.stack}-image-registry"


class RegistryUnavailable(Exception):
    """Why the registry cannot be used for this release (the caller falls back to save | load)."""


def started(target: Target, registry: ImageRegistry) -> int:
    """The registry running, answering ``/v2/``; its port on the manager's 127.0.0.1."""
    state = target.probe(cmd.registry_state(registry.name))
    if not state.ok:
        ran = target.run(cmd.registry_run(registry.name, registry.name, registry.image, registry.stack), check=False,
                         timeout=300, does=f"start the image registry {registry.name} on 127.0.0.1")
        if not ran.ok:
            raise RegistryUnavailable(f"{registry.image} does not start: {_last(ran.stderr)}")
    elif state.stdout.strip() != "running":
        target.run(cmd.container_start(registry.name), check=False, timeout=60)
    published = target.probe(cmd.published_port(registry.name))
    try:
        port = int(published.stdout.split()[0].rsplit(":", 1)[1])
    except (IndexError, ValueError):
        raise RegistryUnavailable(f"{registry.name} publishes no port ({_last(published.stderr)})") from None
    _wait_answering(target, port)
    return port


def _wait_answering(target: Target, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    with target.tunnel("127.0.0.1", port) as (host, local_port):
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{host}:{local_port}/v2/", timeout=2) as answer:
                    if answer.status == 200:
                        return
                    last = f"HTTP {answer.status}"
            except (OSError, urllib.error.URLError) as exc:
                last = str(exc)
            time.sleep(0.1)
    raise RegistryUnavailable(f"the image registry on 127.0.0.1:{port} did not answer in {READY_TIMEOUT:.0f}s "
                              f"({last})")


def _last(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no output"
