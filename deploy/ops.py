"""Day-two steps on a deployed stack: logs, a one-off command, start/stop and clearing a deploy lock (restart:
deploy/restart.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from . import health, lock
from .commands import files
from .errors import CommandFailed, LockHeld, NotDeployed, UsageError
from .session import Session
from .state import Snapshot
from .transaction import Transaction


class LineFilter:
    """Passes on the whole lines that match ``pattern``; output arrives in chunks that split lines anywhere."""

    def __init__(self, pattern: re.Pattern[str], write: Callable[[str], None]):
        self.pattern = pattern
        self.write = write
        self._partial = ""

    def __call__(self, text: str) -> None:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if self.pattern.search(line):
                self.write(line + "\n")

    def close(self) -> None:
        if self._partial and self.pattern.search(self._partial):
            self.write(self._partial + "\n")
        self._partial = ""


def grep_pattern(text: str) -> re.Pattern[str]:
    """``--grep``: a regular expression, case-insensitive (``error`` also finds ``"level": "ERROR"``)."""
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise UsageError(f"--grep {text!r} is not a regular expression: {exc}",
                         hint="quote it, or escape special characters with a backslash") from None


def parse_services(value: str | None, known: Sequence[str]) -> list[str]:
    services = [s.strip() for s in (value or "").split(",") if s.strip()]
    unknown = [s for s in services if s not in known]
    if unknown:
        raise UsageError(f"--service {unknown[0]!r} is not a service of this stack",
                         hint=f"use one of: {', '.join(known)}")
    return services


def logs(session: Session, *, services: Sequence[str] = (), since: str | None = None, tail: int | None = None,
         follow: bool = False, grep: str | None = None, write: Callable[[str], None]) -> None:
    """Stream the stack's logs (all services unless named) to ``write``; read-only, so it runs under --dry."""
    pattern = grep_pattern(grep) if grep else None
    for argv in session.backend.log_commands(services, since=since, tail=tail, follow=follow):
        out = LineFilter(pattern, write) if pattern else write
        try:
            result = session.target.follow(argv, out)
        finally:
            if isinstance(out, LineFilter):
                out.close()
        interrupted = follow and result.exit_status == 130  # Ctrl-C is how --follow ends
        if not result.ok and not interrupted:
            raise CommandFailed(argv, result.exit_status, "see the output above", where=session.where)


def exec_command(session: Session, command: Sequence[str], *, interactive: bool) -> int:
    """``command`` in a fresh container of the serving image, with the app service's environment, volumes and
    networks (on one host ``compose run``; on a swarm see ``SwarmBackend.exec``); returns its exit status.
    Interactive: a terminal, stdin attached.

    It takes no deploy lock: a shell left open must not block a deploy, and the container it runs in never takes
    traffic (one-off containers are not part of the stack's snapshot)."""
    return session.backend.exec(command, interactive=interactive)


def lifecycle(session: Session, action: str, services: Sequence[str] = ()) -> str:
    """Start or stop (the backend's way) as one recorded change; after start, wait for health."""
    settings, target = session.settings, session.target
    snapshot = deployed(session, action)
    app = snapshot.newest_app
    touched = ", ".join(services) or "all services"
    done = f"{'planned' if target.dry else 'done'}: {action} {touched} of {settings.env} on {session.where}"
    with Transaction(session, action, app.revision if app and app.revision else "none",
                     app.image if app else "") as txn, txn.recorded():
        session.backend.lifecycle(action, services, app.image if app else None)
        if _serves_after(session, action, services) and app is not None:
            done += "; " + wait_serving(session, app.revision)
    return done


def deployed(session: Session, action: str) -> Snapshot:
    """What runs, when anything does; else the one line that says to deploy first."""
    snapshot = session.backend.snapshot()
    if not snapshot.containers:
        raise NotDeployed(f"nothing to {action}: no containers of {session.settings.project} on {session.where}",
                          hint=f"deploy first: {deploy_command(session)}")
    return snapshot


def _serves_after(session: Session, action: str, services: Sequence[str]) -> bool:
    """Whether the public port should answer after ``action`` on ``services``: then it is waited for."""
    settings = session.settings
    touched_traffic = not services or settings.app_service in services or settings.proxy_service in services
    return action != "stop" and not session.target.dry and touched_traffic


def wait_serving(session: Session, revision: str | None) -> str:
    """Wait until the public port answers healthy at ``revision``; how it was proven."""
    settings = session.settings
    snapshot = session.backend.snapshot()
    with session.target.tunnel("127.0.0.1", settings.public_port) as (host, port):
        verdict = health.wait(f"http://{host}:{port}{settings.health_path}", revision,
                              timeout=settings.health_timeout, interval=settings.health_interval,
                              mode=settings.health_revision, witness=health.routed(snapshot.apps, snapshot.upstream),
                              progress=session.ui.note)
    return verdict.reason


def unlock(session: Session, *, force: bool = False) -> str:
    """Clear the deploy lock if its holder is gone (or with ``force``); a live holder's lock is refused."""
    target, state_dir, where = session.target, session.state_dir, session.where
    path = lock.lock_dir(state_dir)
    state = lock.read_state(target, state_dir)
    if not state.present:
        return f"no deploy lock on {where}"
    verdict = lock.judge(state, session.settings.lock_stale_seconds)
    whose = state.holder.describe() if state.holder else "an unknown holder (no readable holder.json)"
    if not verdict.stale and not force:
        raise LockHeld(f"[{where}] not clearing the deploy lock of {whose}, {verdict.why}",
                       hint=f"wait for it to finish; if you are sure it is gone: {session.unlock_hint()} --force")
    if target.dry:
        return f"would clear the deploy lock held by {whose} on {where}"
    if not target.run(files.lock_remove_if(path, state.text), check=False).ok:
        raise LockHeld(f"[{where}] the deploy lock changed while it was being cleared: another deploy took it",
                       hint="see who holds it now with `inv deploy.status`")
    note = verdict.why if verdict.stale else f"forced; {verdict.why}: stop it first"
    return f"cleared the deploy lock held by {whose} on {where} ({note})"


def deploy_command(session: Session) -> str:
    settings = session.settings
    task = {"test": "deploy.test", "prod": "deploy.prod"}.get(settings.env, f"deploy.env {settings.env}")
    return f"inv {task}" + (f" --host {settings.host}" if settings.is_remote else "")
