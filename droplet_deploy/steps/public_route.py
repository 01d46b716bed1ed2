"""The public route: the address users reach the environment on, asked from where the stack runs (over SSH
through a tunnel to the host's loopback, so the port need not be open to this machine).

Every step that asks "does the public route answer, at this revision?" asks it here: the rollout's check after
the switch and after switching back, ``deploy.start``/``restart`` waiting until the stack serves again,
``deploy.status`` and ``health.wait``; behind the front proxy, the deploy's check by host name (``wait_by_name``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from droplet_deploy.core.config import Settings
from droplet_deploy.steps import health
from droplet_deploy.transport.target import Target


@contextlib.contextmanager
def opened(target: Target, settings: Settings) -> Iterator[str]:
    """The base URL of the public route for as long as the block runs (``http://127.0.0.1:<port>``)."""
    with target.tunnel("127.0.0.1", settings.public_port) as (host, port):
        yield f"http://{host}:{port}"


def wait(target: Target, settings: Settings, revision: str | None, *, witness: health.Witness | None,
         timeout: float | None = None, progress: Callable[[str], None] | None = None) -> health.Verdict:
    """Wait until the public route answers healthy at ``revision`` (None: any), proven as ``health_revision``
    says; ``witness`` names the containers whose image label may prove it (the one the proxy routes to)."""
    with opened(target, settings) as base:
        return wait_at(base, settings, revision, witness=witness, timeout=timeout, progress=progress)


def wait_at(base: str, settings: Settings, revision: str | None, *, witness: health.Witness | None,
            timeout: float | None = None, progress: Callable[[str], None] | None = None) -> health.Verdict:
    """``wait`` on a route already ``opened`` (a step that asks more of it keeps one tunnel)."""
    return health.wait(base + settings.health_path, revision, witness=witness, mode=settings.health_revision,
                       timeout=settings.health_timeout if timeout is None else timeout,
                       interval=settings.health_interval, progress=progress, host=settings.probe_host)


def wait_by_name(target: Target, settings: Settings, name: str, revision: str | None, *, secure: bool,
                 witness: health.Witness | None, timeout: float | None = None,
                 progress: Callable[[str], None] | None = None) -> health.Verdict:
    """``wait`` through the front proxy by host name: ``https://<name>`` (SNI and Host) when the name has its
    certificate (``secure``), else ``http://<name>``, on the front's port of the host (over SSH through a tunnel
    to its loopback, as for the public port; a ``front_bind`` address is asked there)."""
    port = settings.https_port if secure else settings.http_port
    address = settings.front_bind or "127.0.0.1"
    with target.tunnel(address, port) as (host, local_port):
        url = f"{'https' if secure else 'http'}://{host}:{local_port}{settings.health_path}"
        return health.wait(url, revision, witness=witness, mode=settings.health_revision,
                           timeout=settings.health_timeout if timeout is None else timeout,
                           interval=settings.health_interval, progress=progress, host=name)


def answer(target: Target, settings: Settings, revision: str | None, *,
           witness: health.Witness | None) -> health.Verdict:
    """One look at the public route's health answer (no waiting), judged against ``revision``."""
    with opened(target, settings) as base:
        found = health.probe(base + settings.health_path, timeout=5.0, host=settings.probe_host)
    return health.judge(found, revision, mode=settings.health_revision, witness=witness)


def check_endpoints(base_url: str, paths: list[str], timeout: float = 10.0, *, host: str | None = None) -> list[str]:
    """GET each path (with ``host`` as the Host header); return one problem line per endpoint that does not answer
    2xx/3xx."""
    problems = []
    for path in paths:
        found = health.probe(base_url + path, timeout, host=host)
        if found.status is None:
            problems.append(f"{path}: {found.body}")
        elif found.status >= 400:
            problems.append(f"{path}: HTTP {found.status}")
    return problems
