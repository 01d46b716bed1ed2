"""``deploy.restart``: replace the running containers so they pick up the env file and compose settings as they
are now, without downtime wherever the stack allows it.

    app service      rolled with the serving image and revision, without downtime
    other services   (a worker, ...) not behind the proxy: restarted one service at a time
    the proxy        it holds the public port, so restarting it costs a moment of downtime: kept running unless
                     named with ``--service``
    --hard           everything (or the named services) at once

How each is replaced is the backend's (``Backend.restart``, announced by ``Backend.restart_notes``): on compose
the app goes through the deploy's rollout (a new container beside the old one, created from the current env file
and compose settings, proven, switched to, the old one drained), the others are recreated, ``--hard`` is
``compose restart`` (downtime, each container keeps its environment); on a swarm each service is a forced rolling
update, task by task, the app's start-first behind the revision gate, with the environment it was deployed with.

The history line (action ``restart``) records the env file's sha256 before (what the replaced app containers were
started with, as the last deploy or restart recorded it) and after (what the running ones read); never its values.
``plan`` is pure: the same plan feeds ``--dry`` and the real run.
"""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.core.errors import NotDeployed
from droplet_deploy.engines.base import RestartPlan
from droplet_deploy.engines.snapshot import Container, Snapshot
from droplet_deploy.operations.lifecycle import wait_serving
from droplet_deploy.operations.services import deployed, known_services, parse_services, running_services
from droplet_deploy.session import Session
from droplet_deploy.transaction import env_file as envfile
from droplet_deploy.transaction.frame import Transaction


def plan(snapshot: Snapshot, services: Sequence[str] = (), *, hard: bool = False) -> RestartPlan:
    """What a restart of ``services`` (none: every running service) does. Pure."""
    if hard:
        return RestartPlan(hard=True, services=tuple(services), app=snapshot.app_service)
    app, proxy = snapshot.app_service, snapshot.proxy_service
    running = running_services(snapshot)
    named = list(services) or [app, *(s for s in running if s != app)]  # a stopped app is refused with the fix
    # The proxy only when named: recreating it drops connections on the public port.
    left_running = (proxy,) if proxy in running and not services else ()
    return RestartPlan(roll=app in named, one_by_one=tuple(s for s in named if s != app and s not in left_running),
                       left_running=left_running, app=app)


def restart(session: Session, service: str | None = None, *, hard: bool = False,
            health_timeout: float | None = None) -> None:
    """Restart the stack (or the ``--service`` names, comma-separated) as one recorded change, then wait until
    it serves its revision."""
    ui, settings, target = session.ui, session.settings, session.target
    snapshot = deployed(session, "restart")
    chosen = plan(snapshot, parse_services(service, known_services(session, snapshot)), hard=hard)
    app = _app_to_roll(session, snapshot) if chosen.roll else snapshot.newest_app
    revision, image = (app.revision or "none", app.image) if app else ("none", "")
    env = envfile.drift(target, settings, session.state_dir)
    _announce(session, chosen, app, env)

    with Transaction(session, "restart", revision, image) as txn:
        if chosen.roll:
            with ui.step("preflight", f"[{session.where}]"):
                session.backend.run_preflight(image)
        with txn.recorded() as entry, ui.step("restart", chosen.describe()):
            # The rolled app containers read the env file as it is now; the others keep what they had.
            entry.update(envfile.fields(env, applied=applies_env(session, chosen)))
            outcome = session.backend.restart(chosen, image, revision, timeout=health_timeout)
            entry["proof"] = outcome.proof if outcome else ""
            if chosen.touches_traffic(snapshot) and app is not None and not target.dry:
                txn.suffix = "; " + wait_serving(session, app.revision)
        txn.summary = f"{'planned: restart' if target.dry else 'restarted'} {chosen.describe()} of {settings.env} on {session.where}"
        txn.timed = ["preflight", "restart"]




def applies_env(session: Session, chosen: RestartPlan) -> bool:
    """Whether the restart creates the app from the env file as it is now."""
    return chosen.roll and session.backend.restart_applies_env_file


def _app_to_roll(session: Session, snapshot: Snapshot) -> Container:
    serving = snapshot.serving
    if serving is None:
        raise NotDeployed(f"{session.settings.app_service} is not running on {session.where}: there is nothing to "
                          "roll", hint=f"start it: {session.command('deploy.start')}")
    return serving


def _announce(session: Session, chosen: RestartPlan, app: Container | None, env: envfile.Drift | None) -> None:
    ui, settings = session.ui, session.settings
    dry = " (dry run: printing commands, changing nothing)" if session.target.dry else ""
    if chosen.hard:
        how, cost = session.backend.hard_restart
        ui.line(f"restarting {', '.join(chosen.services) or 'all services'} of {settings.env} on {session.where} "
                f"at once (--hard, {how}): {cost}{dry}")
    else:
        ui.line(f"restarting {settings.env} on {session.where}: {chosen.describe()}{dry}")
    for note in session.backend.restart_notes(chosen, app):
        ui.note(note)
    if env is not None:
        ui.note(f"env file {env.describe()}")
        if env.changed and not applies_env(session, chosen):
            ui.note(f"{settings.app_service} keeps the environment it was created with: {_applied_by(session, chosen)}")


def _applied_by(session: Session, chosen: RestartPlan) -> str:
    """What applies a changed env file to the app."""
    if not session.backend.restart_applies_env_file:
        return f"a deploy applies the change (`{session.deploy_command()}`)"
    how = "without --hard" if chosen.hard else f"--service {session.settings.app_service}"
    return f"`{session.command('deploy.restart')}` {how} applies the change"

