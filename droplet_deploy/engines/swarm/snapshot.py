"""A swarm's tasks as every engine reports what runs (``engines.snapshot.Container``): one per task, named
``<service>.<slot>@<node>``, and one per service a stop scaled to 0. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.commands import swarm as swarm_cmd
from droplet_deploy.engines.snapshot import Container
from droplet_deploy.engines.swarm.stackfile import REVISION_LABEL
from droplet_deploy.engines.swarm.state import StackState, Task


def stopped_containers(state: StackState, shorts: Sequence[str]) -> list[Container]:
    """Pure: one entry per service ``deploy.stop`` scaled to 0, so the stack reads as stopped, not as never
    deployed (``deploy.start`` finds the release to bring back, ``deploy.status`` shows it)."""
    found = []
    for short in shorts:
        service = state.service(short)
        if service is None or state.live_tasks(short) or swarm_cmd.STOPPED_LABEL not in service.labels:
            continue
        kept = service.labels[swarm_cmd.STOPPED_LABEL]
        found.append(Container(id=service.id, name=f"{short} (0/{kept} replicas)", service=short,
                               image=service.image, revision=service.labels.get(REVISION_LABEL), state="stopped",
                               health=None, started_at="", number=0, addresses=()))
    return found


def task_container(short: str, task: Task, state: StackState, hostnames: dict[str, str],
                   proven: dict[str, str | None]) -> Container:
    """Pure: one task as the core shows a container: where it runs in its name, the revision it reported (or
    the one its service was deployed with when it was not asked)."""
    service = state.service(short)
    deployed = service.labels.get(REVISION_LABEL) if service and service.image == task.image else None
    revision = proven[task.id] if task.id in proven else deployed
    node = hostnames.get(task.node_id, task.node_id[:12] or "unassigned")
    state_name = "running" if task.running else task.state
    return Container(id=task.container_id or task.id, name=f"{short}.{task.slot or task.id[:12]}@{node}",
                     service=short, image=task.image, revision=revision, state=state_name, health=None,
                     started_at=task.timestamp, number=task.slot or 0, addresses=tuple(task.addresses.values()))


def service_container(service: str, ident: str, name: str, image: str, revision: str | None) -> Container:
    return Container(id=ident, name=name, service=service, image=image, revision=revision, state="running",
                     health=None, started_at="", number=0, addresses=())
