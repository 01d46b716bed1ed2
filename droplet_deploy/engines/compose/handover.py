"""The first deploy over a stack that publishes the public port from its own app container (one started by
``docker compose up -d`` with ``ports:``): the new app has started beside it and proved itself on its own address;
now the port moves to the proxy, which was created beforehand so that all that is left is a ``docker start``
(``starter``: compose's own start of a created container costs a second more, in the gap).

No host port can be published by two containers, so the move has a gap: from the old container's stop to the
proxy's first answer. It is announced before it starts and measured through the public route; every later
deploy switches inside the proxy and has none. Undone (``hand_back``): the proxy removed, the old container
started again with its port.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Sequence

from droplet_deploy.commands import docker
from droplet_deploy.core.errors import DeployError, RolloutFailed
from droplet_deploy.engines import nginx
from droplet_deploy.engines.compose import compose_file
from droplet_deploy.engines.compose.stack import Stack
from droplet_deploy.engines.snapshot import Container
from droplet_deploy.steps import health, public_route

# The old container's SIGTERM grace. Signalled, an app stops accepting at once, while its published port stays
# bound until the container is gone: every second of grace is a second of refused requests, measured as the
# gap (1 s of grace made it 2 s). Kept at none, a request in flight at that moment is cut instead.
STOP_GRACE = 0
# How long the proxy may take to answer on the port once started, before the handover is undone.
ANSWER_TIMEOUT = 30.0
POLL = 0.02


def holding(old: Sequence[Container], port: int) -> list[Container]:
    """The running app containers that publish the public port themselves."""
    return [c for c in old if port in c.published]


def starter(stack: Stack, proxy: Container, image: str) -> list[str]:
    """The command that starts the created ``proxy``, run once the port is free.

    The toolkit's own proxy (the override adds it when the compose file has none) carries its nginx config
    inline; compose puts such a file into a container when it starts it. Done here beforehand, the way compose
    does it (a copy into the container), the start is a bare ``docker start``. A proxy of the user's own compose
    file is started by compose, whatever its file says."""
    if refresh_config(stack, proxy):
        return docker.start([proxy.id])
    return stack.compose(image).up([stack.settings.proxy_service], no_deps=True, no_recreate=True)


def refresh_config(stack: Stack, proxy: Container) -> bool:
    """Put this release's nginx config into the toolkit's own proxy (False: the compose file has its own proxy).
    Before a switch too: compose leaves a running proxy as it made it, with the config of that deploy, and the
    switch's graceful reload then takes a changed max_body_mb or read_timeout."""
    if not stack.overrides or _file_has_proxy(stack):
        return False
    if stack.settings.app_service == stack.settings.frontend_service:
        return False  # the frontend's roll (frontend.settings_for): the app's rollout put the routed config in
    conf = posixpath.join(posixpath.dirname(stack.overrides[0]), "proxy.nginx.conf")
    stack.target.write_text(conf, nginx.config_for(stack.settings))
    stack.target.run(docker.copy_into(proxy.id, conf, nginx.CONFIG_PATH))
    return True


def _file_has_proxy(stack: Stack) -> bool:
    text = stack.target.read_text(stack.compose_file)
    try:
        return text is not None and compose_file.has_service(compose_file.load(text, stack.compose_file),
                                                             stack.settings.proxy_service)
    except DeployError:
        return True  # unreadable here: leave the start to compose


def hand_over(stack: Stack, proxy: Container, holders: Sequence[Container], *, start: list[str],
              say: Callable[[str], None], stopped: Callable[[], None]) -> float:
    """Stop ``holders``, start the created ``proxy`` on the port (``start``: the compose command that starts it), wait for
    its first answer; returns the gap in seconds. ``stopped`` is called once the holders are down (undoing must
    then start them again)."""
    settings, target = stack.settings, stack.target
    port, names = settings.public_port, ", ".join(c.name for c in holders)
    with public_route.opened(target, settings) as base:
        say(f"handing port {port} from {names} to {proxy.name} now: no answers on it until the proxy is up "
            "(about a second)")
        began = time.monotonic()
        target.run(docker.stop([c.id for c in holders], timeout=STOP_GRACE))
        stopped()
        down = time.monotonic()
        target.run(start)
        up = time.monotonic()
        seen = first_answer(base + settings.health_path, host=settings.probe_host, deadline=began + ANSWER_TIMEOUT)
        gap = time.monotonic() - began
    if seen is None:
        raise RolloutFailed(f"the {settings.proxy_service} did not answer on port {port} within "
                            f"{ANSWER_TIMEOUT:g}s of the handover",
                            hint=f"see `inv deploy.logs --service {settings.proxy_service}`")
    say(f"port {port} handed over to {proxy.name}: {gap:.2f}s from stopping {names} to its first answer "
        f"(HTTP {seen}; the stop took {down - began:.2f}s, the start {up - down:.2f}s)")
    return gap


def first_answer(url: str, *, host: str, deadline: float) -> int | None:
    """The first HTTP status (below 500: the proxy reaches an app) at ``url``; None at the deadline."""
    while time.monotonic() < deadline:
        found = health.probe(url, timeout=1.0, host=host)
        if found.status is not None and found.status < 500:
            return found.status
        time.sleep(POLL)
    return None


def hand_back(stack: Stack, proxy: Container | None, holders: Sequence[Container], *, stopped: bool) -> None:
    """Undo: the proxy this deploy created goes, and the old containers get their port back."""
    if proxy is not None:
        stack.remove([proxy])
    if stopped and holders:
        stack.target.run(docker.start([c.id for c in holders]))
