"""Which services a day-two task acts on: what runs (or the one line that says to deploy first), what
``--service`` may name, and the names it was given."""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.core.errors import NotDeployed, UsageError
from droplet_deploy.engines.snapshot import Snapshot
from droplet_deploy.session import Session


def deployed(session: Session, action: str) -> Snapshot:
    """What runs, when anything does; else the one line that says to deploy first."""
    snapshot = session.backend.snapshot()
    if not snapshot.containers:
        raise NotDeployed(f"nothing to {action}: no containers of {session.settings.project} on {session.where}",
                          hint=f"deploy first: {session.deploy_command()}")
    return snapshot


def running_services(snapshot: Snapshot) -> list[str]:
    """Services with a running container, each once, in the snapshot's order."""
    return list(dict.fromkeys(c.service for c in snapshot.containers if c.running))


def known_services(session: Session, snapshot: Snapshot) -> list[str]:
    """What ``--service`` may name: the app, the proxy and any other service that has a container."""
    settings = session.settings
    return list(dict.fromkeys([settings.app_service, settings.proxy_service,
                               *(c.service for c in snapshot.containers)]))


def parse_services(value: str | None, known: Sequence[str]) -> list[str]:
    services = [s.strip() for s in (value or "").split(",") if s.strip()]
    unknown = [s for s in services if s not in known]
    if unknown:
        raise UsageError(f"--service {unknown[0]!r} is not a service of this stack",
                         hint=f"use one of: {', '.join(known)}")
    return services
