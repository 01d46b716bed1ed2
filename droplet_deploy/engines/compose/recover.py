"""Before a deploy retires what a killed one left running: traffic is on a container that proves itself.

A deploy killed between the switch and its checks leaves the proxy on a new, unproven container, and the old,
proven one running beside it as an "orphan". Retiring the orphans as they are would retire the one known to work.
So the container the proxy routes to is proven first (healthy at its own revision through the public port, its
check endpoints answering); if it is not, traffic goes back to a running container that proves itself on its own
address, and the unproven one is retired with the other leftovers instead.
"""

from __future__ import annotations

from collections.abc import Callable

from droplet_deploy.core.errors import DeployError
from droplet_deploy.engines.compose.stack import Stack
from droplet_deploy.engines.snapshot import Container, Snapshot
from droplet_deploy.steps import health, public_route

# A leftover is judged quickly: each container was healthy once, or never gets the traffic back.
PROVE_SECONDS = 15.0


def traffic_on_proven(stack: Stack, snapshot: Snapshot, say: Callable[[str], None]) -> Snapshot:
    """``snapshot`` as it is once traffic is on a proven container: the proxy switched back to one when the
    serving one does not prove itself (at most one change), so that its ``orphans()`` are the ones to retire."""
    orphans, serving, proxy = snapshot.orphans(), snapshot.serving, snapshot.proxy
    if not orphans or serving is None or proxy is None or stack.target.dry:
        return snapshot
    why = _fails_publicly(stack, serving)
    if not why:
        return snapshot
    say(f"{serving.name}, which the proxy routes to, does not prove itself ({why}); looking for one that does")
    for candidate in sorted(orphans, key=lambda c: (c.started_at, c.number)):
        if _proves_itself(stack, candidate):
            say(f"switching traffic back to {candidate.name} (revision {(candidate.revision or 'unknown')[:12]}), "
                "which proves itself")
            stack.switch(proxy, candidate)
            return Snapshot(snapshot.app_service, snapshot.proxy_service, snapshot.containers, candidate.name)
    say("no running app container proves itself; the deploy goes on and retires the leftovers")
    return snapshot


def _fails_publicly(stack: Stack, serving: Container) -> str:
    settings = stack.settings
    try:
        with public_route.opened(stack.target, settings) as base:
            public_route.wait_at(base, settings, serving.revision, witness=health.Witness.of(serving),
                                 timeout=min(settings.health_timeout, PROVE_SECONDS))
            problems = public_route.check_endpoints(base, settings.check_endpoints)
    except (DeployError, OSError) as exc:
        return str(exc)
    return "; ".join(problems)


def _proves_itself(stack: Stack, container: Container) -> bool:
    settings = stack.settings
    if not container.addresses:
        return False
    try:
        with stack.target.tunnel(container.addresses[0], settings.app_port) as (host, port):
            health.wait(f"http://{host}:{port}{settings.health_path}", container.revision,
                        timeout=min(settings.health_timeout, PROVE_SECONDS),
                        interval=settings.health_interval, mode=settings.health_revision,
                        witness=health.Witness.of(container))
    except (DeployError, OSError):
        return False
    return True
