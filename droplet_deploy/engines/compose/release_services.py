"""The services besides the app that run the release (a worker on the app's image, a service built of its own):
recreated with the release's images, one at a time in a safe order, each proven at the revision.

Not behind the proxy, they cannot start beside their old containers: ``compose up --no-deps`` replaces each one.
By default that happens after the app's switch, so the new code takes traffic only once it has proven itself;
``services_first`` names those the new release needs running before it (recreated before the app starts beside).
Each is proven by its containers' revision label and, where the service has a health check of its own, by Docker
reporting it healthy, within ``health_timeout``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import RolloutFailed
from droplet_deploy.engines.compose.stack import Stack
from droplet_deploy.engines.snapshot import Container, Snapshot

POLL_SECONDS = 0.5


def in_order(settings: Settings, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``names`` split into those recreated before the app's switch (``services_first``, in that order) and after."""
    first = [name for name in settings.services_first if name in names]
    return first, [name for name in names if name not in first]


def update(stack: Stack, image: str, revision: str, names: Sequence[str], *, say: Callable[[str], None],
           timeout: float) -> None:
    """Recreate ``names`` one at a time from the release's compose files and prove each at ``revision``."""
    compose, target = stack.compose(image), stack.target
    for name in names:
        say(f"recreating {name} at {revision[:12]}")
        target.run(compose.up([name], no_deps=True))
        if target.dry:
            target.say(f"[dry-run] [{target.name}] wait up to {timeout:g}s for {name} to run revision "
                       f"{revision[:12]}")
            continue
        prove(stack, name, revision, timeout=timeout)
        say(f"{name} runs {revision[:12]}")


def prove(stack: Stack, name: str, revision: str, *, timeout: float) -> None:
    """Every container of ``name`` runs, carries ``revision`` and, with a health check, is healthy; by a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        problem = judge(stack.snapshot(upstream=False), name, revision)
        if problem is None:
            return
        if problem.final or time.monotonic() >= deadline:
            raise RolloutFailed(f"service {name}: {problem.text}" + ("" if problem.final else f" after {timeout:g}s"),
                                hint=f"see `inv deploy.logs --service {name}`; `inv deploy.rollback` brings back "
                                     "the release before")
        time.sleep(POLL_SECONDS)


@dataclass(frozen=True)
class Problem:
    text: str
    final: bool = False  # it cannot change by waiting (a wrong label, a container that exited)


def judge(snapshot: Snapshot, name: str, revision: str) -> Problem | None:
    """What still keeps ``name`` from counting as the release, or None. A wrong label never changes: final."""
    containers: list[Container] = snapshot.of(name)
    if not containers:
        return Problem("no container was created")
    wrong = [c for c in containers if c.revision != revision]
    if wrong:
        c = wrong[0]
        return Problem(f"{c.name} runs {c.image}, labelled revision {(c.revision or 'none')[:12]}, not "
                       f"{revision[:12]}", final=True)
    down = [c for c in containers if not c.running]
    if down:
        return Problem(f"{down[0].name} is {down[0].state}", final=down[0].state in ("exited", "dead"))
    unhealthy = [c for c in containers if c.health not in (None, "healthy")]
    if unhealthy:
        c = unhealthy[0]
        return Problem(f"{c.name} is {c.health}")
    return None
