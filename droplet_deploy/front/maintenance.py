"""Maintenance mode: the front proxy answers this environment's names with a 503 page and ``Retry-After``, every
other environment untouched. It is a field of the environment's route file, so a deploy meanwhile keeps it on
(``route.merged``) and any checkout of the project ends it with ``deploy.live``."""

from __future__ import annotations

import datetime

from droplet_deploy.core.errors import NotDeployed, UsageError
from droplet_deploy.front import config_lock
from droplet_deploy.front.proxy import FrontProxy
from droplet_deploy.front.route import Route
from droplet_deploy.session import Session

MESSAGE_LIMIT = 500


def switch(session: Session, *, on: bool, message: str | None = None) -> str:
    """Turn maintenance on (with ``message``) or off; the line that says what now holds."""
    settings = session.settings
    if not settings.hosts:
        raise UsageError(f"{settings.env} has no host names, and maintenance is served by the front proxy",
                         hint=f"set deploy.environments.{settings.env}.hosts and deploy it behind the front proxy "
                              "(docs/several-apps.md)")
    if message is not None and (len(message) > MESSAGE_LIMIT or not message.strip()):
        raise UsageError(f"--message must be 1 to {MESSAGE_LIMIT} characters, got {len(message)}")
    front = FrontProxy(session.target, settings)
    with config_lock.changing(session.target, settings.front_dir, session.ui.note):
        routes = front.routes()
        mine = next((r for r in routes if r.project == settings.project), None)
        container = front.running()
        if mine is None or container is None:
            raise NotDeployed(f"{settings.env} is not routed by a front proxy on {session.where} yet",
                              hint=f"deploy it first: {session.deploy_command()}")
        state = _state(message) if on else None
        changed = mine.with_maintenance(state)
        updated = [changed if r.project == mine.project else r for r in routes]
        front.write_route(changed)
        front.apply(container, mine.listeners, updated, front.certified(container))
    return _said(session, changed, on)


def _state(message: str | None) -> dict:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"message": message, "since": now}


def _said(session: Session, route: Route, on: bool) -> str:
    names = ", ".join(route.hosts)
    if on:
        return f"maintenance on for {session.settings.env} ({names}): 503 with Retry-After; end it with " \
               f"{session.command('deploy.live')}"
    return f"{session.settings.env} is live again ({names})"


def is_on(session: Session) -> bool:
    routes = FrontProxy(session.target, session.settings).routes()
    return any(r.project == session.settings.project and r.maintenance for r in routes)



