"""Release hooks (``deploy.hooks``): the user's commands at two points of a release.

    pre_switch    in a one-off container of the new image set up as the app's own (``Backend.one_off``: on
                  compose ``compose run --rm --no-deps -T <app service>``; on a swarm the ``docker run --rm`` of
                  ``deploy.exec``, with the service's environment, volumes and network), after verify.build and
                  before any traffic moves: migrations. The first one that fails abandons the release; nothing
                  running was changed.
    post_deploy   where ``inv`` runs, after every deploy and rollback (ok, failed or interrupted), with the facts
                  in DEPLOY_* variables: notifications. Bounded in time; a failure is a warning, never the
                  deploy's result, and never hides the deploy's own error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from droplet_deploy.commands import hooks as hooks_cmd
from droplet_deploy.core.errors import HookFailed
from droplet_deploy.core.redact import clean, display, redact
from droplet_deploy.session import Session
from droplet_deploy.transport.target import Result

# The actions after which post_deploy runs: those that put a release in service.
NOTIFIED = ("deploy", "rollback")


def pre_switch(session: Session, image: str) -> None:
    """Each ``pre_switch`` command in turn, in a fresh container of ``image``; its output is shown as it comes."""
    commands = session.settings.hooks.pre_switch
    for index, command in enumerate(commands):
        name = hook_name("pre_switch", index, len(commands))
        session.ui.note(f"{name}: {display(command)}")
        result = session.backend.one_off(image, command)
        if not result.ok:
            raise HookFailed(name, command, result.exit_status, output_tail(result, command),
                             hint="the release was abandoned before any traffic moved: what served before still "
                                  "serves; fix the command or what it runs, then deploy again")


def post_deploy(session: Session, facts: dict[str, str]) -> None:
    """Each ``post_deploy`` command with ``facts`` (DEPLOY_RESULT, ...) in its environment. Never raises: a failure
    is one warning line, and an interrupt stops the remaining commands."""
    settings = session.settings
    commands = settings.hooks.post_deploy
    for index, command in enumerate(commands):
        name = hook_name("post_deploy", index, len(commands))
        argv = hooks_cmd.post_deploy(sys.executable, settings.hooks.post_deploy_timeout, facts, command)
        try:
            result = session.local.run(argv, check=False, watched=True)
        except KeyboardInterrupt:
            session.ui.line(f"warning: {name} `{display(command)}` was interrupted; the remaining post_deploy "
                            "commands were not run")
            return
        except Exception as exc:  # noqa: BLE001 - whatever breaks a notification must not replace the deploy's result
            session.ui.line(f"warning: {name} `{display(command)}` could not run: {redact(str(exc))}")
            continue
        if not result.ok:
            session.ui.line(warning(name, command, result, settings.hooks.post_deploy_timeout))


def facts(session: Session, *, action: str, revision: str, result: str, duration: float,
          reason: str = "") -> dict[str, str]:
    """What a post_deploy command finds in its environment."""
    return {
        "DEPLOY_ACTION": action,
        "DEPLOY_RESULT": result,
        "DEPLOY_REVISION": revision,
        "DEPLOY_ENV": session.settings.env,
        "DEPLOY_HOST": session.where,
        "DEPLOY_DURATION": f"{duration:.1f}",
        "DEPLOY_REASON": redact(reason),
    }


def hook_name(hook: str, index: int, count: int) -> str:
    """``hooks.pre_switch`` when there is one command, else ``hooks.pre_switch[2]`` (counted from 1, as people do)."""
    return f"hooks.{hook}" + (f"[{index + 1}]" if count > 1 else "")


def output_tail(result: Result, command: Sequence[str]) -> str:
    """The last line the command printed (its error output first), with its credentials masked."""
    for text in (result.stderr, result.stdout):
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if lines:
            return clean(lines[-1], command)[:300]
    return ""


def warning(name: str, command: Sequence[str], result: Result, timeout: float) -> str:
    if result.exit_status == hooks_cmd.TIMED_OUT:
        what = f"did not finish within {timeout:g}s and was stopped"
    else:
        tail = output_tail(result, command)
        what = f"exited {result.exit_status}" + (f": {tail}" if tail else "")
    return f"warning: {name} `{display(command)}` {what} (the deploy's result stands)"
