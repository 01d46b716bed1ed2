"""`inv deploy.status|logs|exec|start|stop|restart|unlock`: the day-two tasks, locally (--env) or on a host
(--host)."""

from __future__ import annotations

import json as json_mod
import sys

from invoke import Collection, Exit, task

from droplet_deploy.core import validate
from droplet_deploy.core.errors import UsageError
from droplet_deploy.tasks.flags import (
    ACCEPT_NEW_HELP,
    ENV_HELP,
    HOST_HELP,
    CountedTask,
    clean_errors,
    command_flag,
    number_flag,
    session_for,
)

WHERE = {"env": ENV_HELP, "host": HOST_HELP, "accept-new-host-key": ACCEPT_NEW_HELP}
SERVICE_HELP = "only these services, comma-separated (default: all)"


@task(klass=CountedTask, help={**WHERE, "releases": "how many releases from the history to list (default 5)",
                                "json": "print the status as one JSON object (for CI and scripts)"})
@clean_errors
def status(c, env=None, host=None, releases=None, json=False, accept_new_host_key=False):
    """Running revision, health, containers and uptime, proxy upstream, lock holder and the last releases."""
    from droplet_deploy.operations import status as status_mod
    count = number_flag("releases", releases, validate.RELEASES, default=5)
    with session_for(c, env, host, accept_new_host_key=accept_new_host_key) as session:
        found = status_mod.gather(session, releases=count)
        if json:
            _stdout(json_mod.dumps(status_mod.as_json(found), indent=2, sort_keys=True) + "\n")
            return
        for line in status_mod.render(found, session.unlock_hint(), session.command("deploy.restart")):
            session.ui.line(line)


@task(klass=CountedTask, help={
    **WHERE,
    "follow": "keep printing new lines until Ctrl-C",
    "since": "only lines newer than this: 10m, 2h, or a timestamp like 2025-01-02T13:23:37Z",
    "grep": "only lines matching this regular expression (case-insensitive)",
    "service": SERVICE_HELP,
    "tail": "the last N lines of each container (default: all)",
})
@clean_errors
def logs(c, follow=False, since=None, grep=None, service=None, tail=None, env=None, host=None,
         accept_new_host_key=False):
    """The stack's logs: all services, or --service app; --follow, --since 10m, --grep error, --tail N."""
    from droplet_deploy.operations import logs as logs_ops
    from droplet_deploy.operations import services as services_ops
    lines = number_flag("tail", tail, validate.LINES)
    with session_for(c, env, host, accept_new_host_key=accept_new_host_key) as session:
        settings = session.settings
        services = services_ops.parse_services(service, [settings.app_service, settings.proxy_service])
        try:
            logs_ops.logs(session, services=services, since=since, tail=lines, follow=follow,
                     grep=grep, write=_stdout)
        except KeyboardInterrupt:
            pass  # the way to stop --follow, not a failure


@task(name="exec", help={
    **WHERE,
    "cmd": "the command to run, split like a shell line: --cmd \"python3 -m app --check\"",
})
@clean_errors
def exec_(c, cmd=None, env=None, host=None, accept_new_host_key=False):
    """Run a command in a fresh container of the serving image (its env, volumes, networks); its exit code is ours."""
    from droplet_deploy.operations import one_off as one_off_ops
    command = command_flag("cmd", cmd)
    with session_for(c, env, host, accept_new_host_key=accept_new_host_key) as session:
        status = one_off_ops.exec_command(session, command, interactive=_at_a_terminal())
    if status != 0:
        raise Exit(code=status if status > 0 else 1)


def _at_a_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _lifecycle(c, action, service, env, host, accept_new_host_key):
    from droplet_deploy.operations import lifecycle as lifecycle_ops
    from droplet_deploy.operations import services as services_ops
    with session_for(c, env, host, accept_new_host_key=accept_new_host_key) as session:
        settings = session.settings
        services = services_ops.parse_services(service, [settings.app_service, settings.proxy_service])
        session.ui.line(lifecycle_ops.lifecycle(session, action, services))


@task(help={**WHERE, "service": SERVICE_HELP})
@clean_errors
def start(c, service=None, env=None, host=None, accept_new_host_key=False):
    """Start the stack's stopped containers, then wait until it answers healthy at its revision."""
    _lifecycle(c, "start", service, env, host, accept_new_host_key)


@task(help={**WHERE, "service": SERVICE_HELP})
@clean_errors
def stop(c, service=None, env=None, host=None, accept_new_host_key=False):
    """Stop the stack's containers (graceful: SIGTERM, then each service's stop grace period)."""
    _lifecycle(c, "stop", service, env, host, accept_new_host_key)


@task(help={
    **WHERE,
    "service": "only these services, comma-separated (default: the app, rolled, and every other running service "
               "but the proxy, one at a time)",
    "hard": "`compose restart` of everything at once, as before: costs downtime, and a changed env file is not applied",
    "health-timeout": "seconds the new app container gets to report healthy (default: deploy.health_timeout)",
})
@clean_errors
def restart(c, service=None, hard=False, health_timeout=None, env=None, host=None, accept_new_host_key=False):
    """Replace the containers without downtime, picking up the env file and compose settings.

    The app goes through a rollout; the others are recreated one at a time; --hard restarts everything at once.
    """
    from droplet_deploy.operations import restart as restart_mod
    timeout = number_flag("health-timeout", health_timeout, validate.TIMEOUT)
    with session_for(c, env, host, accept_new_host_key=accept_new_host_key) as session:
        restart_mod.restart(session, service, hard=hard, health_timeout=timeout)


@task(help={**WHERE, "force": "clear it even though its holder still looks alive (a running pid, a fresh heartbeat)"})
@clean_errors
def unlock(c, env=None, host=None, force=False, accept_new_host_key=False):
    """Clear a deploy lock whose holder is gone, saying whose it was; a live holder's only with --force."""
    from droplet_deploy.operations import unlock as unlock_ops
    with session_for(c, env, host, accept_new_host_key=accept_new_host_key) as session:
        session.ui.line(unlock_ops.unlock(session, force=force))


@task(name="clean", help={
    **WHERE,
    "dry": "list what would be removed and the bytes it would free; remove nothing",
    "volume": "also remove this volume of the project (as the compose file names it) and all its data, once "
              "confirmed; never one a running container mounts",
    "yes": "with --volume: remove it without asking (for scripts)",
})
@clean_errors
def clean(c, dry=False, volume=None, yes=False, env=None, host=None, accept_new_host_key=False):
    """Remove this app's images beyond keep_images that no release needs, its dangling build images and the
    project's stopped containers; never another project's, a volume only by name. Prints the bytes freed."""
    if volume and not (yes or dry) and not sys.stdin.isatty():
        raise UsageError(f"deploy.clean --volume {volume} deletes its data and there is no terminal to confirm on",
                         hint="pass --yes to remove it without asking")
    from droplet_deploy.transaction import clean as clean_ops

    with session_for(c, env, host, accept_new_host_key=accept_new_host_key) as session:
        clean_ops.run(session, dry=dry or session.target.dry, volume=volume, confirm=lambda full: yes or input(
            f"Remove volume {full} and all its data? Type {volume} to confirm: ").strip() == volume)


def _stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


TASKS = (status, logs, exec_, start, stop, restart, unlock, clean)


def register(collection: Collection) -> None:
    """Add these tasks to the ``deploy`` collection, beside the pipeline tasks."""
    for t in TASKS:
        collection.add_task(t)
