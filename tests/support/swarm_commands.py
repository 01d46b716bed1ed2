"""Swarm commands only the tests run: making, joining and leaving the test swarm, and removing what a test
deployed. The toolkit itself never creates or dismantles a swarm (docs/swarm.md: that stays the operator's)."""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.commands.swarm import DOCKER

SWARM_PORT = 2377


def swarm_init(advertise_addr: str, docker: Sequence[str] = DOCKER) -> list[str]:
    return [*docker, "swarm", "init", "--advertise-addr", advertise_addr]

def swarm_leave(*, force: bool = False, docker: Sequence[str] = DOCKER) -> list[str]:
    return [*docker, "swarm", "leave", *(["--force"] if force else [])]

def swarm_join_token(role: str = "worker", docker: Sequence[str] = DOCKER) -> list[str]:
    if role not in ("worker", "manager"):
        raise ValueError(f"a join token is for a worker or a manager, not {role!r}")
    return [*docker, "swarm", "join-token", "--quiet", role]

def swarm_join(token: str, manager_addr: str, *, advertise_addr: str | None = None,
               docker: Sequence[str] = DOCKER) -> list[str]:
    argv = [*docker, "swarm", "join", "--token", token]
    if advertise_addr:
        argv += ["--advertise-addr", advertise_addr]
    return [*argv, "--", manager_addr]

def node_inspect(node_ids: Sequence[str], docker: Sequence[str] = DOCKER) -> list[str]:
    """A JSON array: each node's Description (hostname, resources) and Status.Addr."""
    return [*docker, "node", "inspect", "--", *node_ids]

def node_rm(node_ids: Sequence[str], *, force: bool = False, docker: Sequence[str] = DOCKER) -> list[str]:
    return [*docker, "node", "rm", *(["--force"] if force else []), "--", *node_ids]

def stack_rm(stack: str, docker: Sequence[str] = DOCKER) -> list[str]:
    return [*docker, "stack", "rm", "--", stack]

def service_rm(services: Sequence[str], docker: Sequence[str] = DOCKER) -> list[str]:
    return [*docker, "service", "rm", "--", *services]
