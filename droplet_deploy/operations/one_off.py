"""``deploy.exec``: a one-off command in the serving image."""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.session import Session


def exec_command(session: Session, command: Sequence[str], *, interactive: bool) -> int:
    """``command`` in a fresh container of the serving image, with the app service's environment, volumes and
    networks (on one host ``compose run``; on a swarm see ``SwarmBackend.exec``); returns its exit status.
    Interactive: a terminal, stdin attached.

    It takes no deploy lock: a shell left open must not block a deploy, and the container it runs in never takes
    traffic (one-off containers are not part of the stack's snapshot)."""
    return session.backend.exec(command, interactive=interactive)
