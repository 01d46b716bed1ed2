"""Pure plans of the day-two changes on a swarm: which services a restart updates and how that is announced, the
replica counts a stop and a start set, and when they have settled."""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.commands import swarm as swarm_cmd
from droplet_deploy.core.errors import UsageError
from droplet_deploy.engines.base import RestartPlan
from droplet_deploy.engines.snapshot import Container
from droplet_deploy.engines.swarm.state import Service, StackState


def restarted(plan: RestartPlan, app: str, services: list[str]) -> list[str]:
    """Pure: the stack's services a restart ``plan`` updates, in the stack's order."""
    if plan.hard:
        wanted = set(plan.services or services)
    else:
        wanted = set(plan.one_by_one) | ({app} if plan.roll else set())
    return [name for name in services if name in wanted]


def restart_note(app_service: str, proxy_service: str, stack: str, short: str, app: Container | None) -> str:
    """Pure: how a restart replaces ``short`` on a swarm, for the line announcing it."""
    if short == app_service:
        what = f" of {app.image} (revision {(app.revision or '?')[:12]})" if app else ""
        return (f"{short}: a rolling update of {stack}_{short} (`docker service update --force`), task by task: "
                f"a new task{what} starts beside the old one (start-first), takes requests once it passes the "
                "revision gate, then the old one stops; with the environment the service was deployed with")
    if short == proxy_service:
        return (f"{short}: a forced update of {stack}_{short}, stop-first (it holds the published port: a moment of "
                "downtime)")
    return f"{short}: a forced rolling update of {stack}_{short}, task by task as its update_config says"


def scaling(action: str, services: Sequence[Service], default_replicas: int) -> list[tuple[str, int, int | None]]:
    """Pure: the replica changes ``action`` makes: (service name, replicas, the count to remember or None).
    Stop skips services already at 0; start gives back what stop kept and leaves every other service alone."""
    changes: list[tuple[str, int, int | None]] = []
    for service in services:
        kept = service.labels.get(swarm_cmd.STOPPED_LABEL)
        if action == "start" and kept is not None:
            changes.append((service.name, int(kept) if kept.isdigit() and int(kept) else default_replicas, None))
        elif action == "stop" and service.replicas is None:
            raise UsageError(f"{service.name} is a global service: a stop on engine: swarm scales services to 0",
                             hint="name the other services with --service, or `docker service rm` it by hand")
        elif action == "stop" and kept is None and service.replicas:
            changes.append((service.name, 0, service.replicas))
    return changes


def settled(action: str, state: StackState, short: str) -> bool:
    """Pure: after ``action``, whether ``short``'s tasks are all gone (stop) or all running (start)."""
    tasks = state.tasks.get(short, [])
    if action == "stop":
        return not any(t.state == "running" for t in tasks)
    service = state.service(short)
    wanted = service.replicas if service and service.replicas is not None else 1
    return len(state.running_tasks(short)) >= wanted
