"""One exception family. Each error carries its facts and renders one line: what, where, how to fix.

The CLI (``deploy.tasks.cli``) turns any ``DeployError`` into ``invoke.Exit(str(err), err.exit_code)`` so users
see that line and no traceback.
"""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.core.redact import clean, display


class DeployError(Exception):
    """Base of every error the toolkit raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(DeployError):
    """A setting is missing, of the wrong type or unknown."""

    exit_code = 2

    def __init__(self, key: str, problem: str, fix: str):
        self.key = key
        # Keys and names come from the user's files: a newline in one must not break the one line.
        super().__init__(_printable(f"config error: {key}: {problem}"), hint=_printable(fix))


class UsageError(DeployError):
    """A command-line flag or argument the task cannot use."""

    exit_code = 2


class CommandFailed(DeployError):
    """A command exited non-zero. Keeps the argv, exit status and stderr; the message shows the command and the
    last line of stderr with the command's credentials masked (so does ``stderr``: every reader displays it)."""

    def __init__(self, argv: Sequence[str], exit_status: int, stderr: str = "", where: str = "local"):
        self.argv = list(argv)
        self.exit_status = exit_status
        self.stderr = clean(stderr, self.argv)
        self.where = where
        tail = _last_line(self.stderr)
        detail = f": {tail}" if tail else ""
        super().__init__(f"[{where}] `{_short(self.argv)}` exited {exit_status}{detail}")


class PreflightFailed(DeployError):
    """The target is not fit to deploy to; nothing was changed."""


class GitError(DeployError):
    """The work tree cannot give a revision to deploy."""


class VerifyFailed(DeployError):
    """The built image failed one or more verification checks."""

    def __init__(self, image: str, failed: Sequence[str], fixes: Sequence[str]):
        self.image = image
        self.failed = list(failed)
        self.fixes = list(fixes)
        super().__init__(
            f"verify.build: {image} failed {len(self.failed)} check(s): {', '.join(self.failed)}",
            hint=_fixes_hint(self.failed, self.fixes),
        )


class HealthTimeout(DeployError):
    """The service never answered healthy with the expected revision in time."""

    def __init__(self, url: str, timeout: float, last_seen: str):
        self.url = url
        self.timeout = timeout
        self.last_seen = last_seen
        super().__init__(f"health.wait: {url} not healthy after {timeout:g}s; last seen: {last_seen}")


class HealthRejected(DeployError):
    """The service answered in a way that can never become valid (a 404, a redirect, a login, a body without
    revision while the body is insisted on): given up within seconds instead of at the timeout."""

    def __init__(self, url: str, last_seen: str, fix: str, held: float):
        self.url = url
        self.last_seen = last_seen
        self.fix = fix
        self.held = held
        super().__init__(f"health.wait: {url}: {last_seen}; the same for {held:.1f}s, which waiting will not "
                         "change", hint=fix)


class RolloutFailed(DeployError):
    """The new release did not prove itself; the previous one keeps serving."""


class HookFailed(DeployError):
    """A ``pre_switch`` release hook exited non-zero: the release was abandoned before any traffic moved."""

    def __init__(self, name: str, command: Sequence[str], exit_status: int, tail: str = "", *, hint: str | None = None):
        self.name = name
        self.command = list(command)
        self.exit_status = exit_status
        self.tail = tail
        detail = f": {tail}" if tail else ""
        super().__init__(f"{name} `{_short(self.command)}` exited {exit_status}{detail}", hint=hint)


class RollbackImpossible(DeployError):
    """There is no release to roll back to (none in the history, or its image was pruned); nothing changed."""


class LockHeld(DeployError):
    """Another deploy holds the lock on this target."""


class ConnectError(DeployError):
    """The SSH connection could not be made or the host key could not be trusted."""


class HostKeyUnknown(ConnectError):
    """The host's key is in no known_hosts file and first-seen keys are not accepted; nothing ran."""


class HostKeyChanged(ConnectError):
    """The host offers a key other than the one on record: refused, even with accept-new; nothing ran."""


class HostKeyRevoked(ConnectError):
    """The host offers a key a known_hosts file marks ``@revoked``: refused, even with accept-new; nothing ran."""


class FrontError(DeployError):
    """The front proxy cannot route this environment (a name another one claims, its container, its config)."""


class NotDeployed(DeployError):
    """The environment has no containers yet: there is nothing to start, stop or restart."""


class BackupError(DeployError):
    """A backup could not be made, verified or restored."""


class NothingToBackUp(BackupError):
    """No app container is running (a first deploy, or a stack that is down): there is no database to copy."""


class NoDatabaseFile(BackupError):
    """``db_path`` names no file in the app container: a wrong setting, or an app that keeps no SQLite database."""


class BackupInvalid(BackupError):
    """A stored backup fails verification. Names the backup and every file that failed."""

    def __init__(self, backup_id: str, problems: Sequence[str]):
        self.backup_id = backup_id
        self.problems = list(problems)
        super().__init__(f"backup {backup_id} is damaged: {'; '.join(self.problems)}",
                         hint="do not restore it; pick another with `inv backup.list`")


class ComposeFileError(DeployError):
    """The compose file cannot be read as one (not YAML, no services, no app service); nothing was changed."""

    exit_code = 2


class InitError(DeployError):
    """``inv init`` cannot tell how to deploy this repository (no git, no Dockerfile, which service); wrote nothing."""

    exit_code = 2


def _printable(text: str) -> str:
    """``text`` with control characters written as escapes (``\\n``), so it stays on one line."""
    import re

    return re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], text)


def _fixes_hint(failed: Sequence[str], fixes: Sequence[str]) -> str:
    """The fix of each failed check (named when there are several), then what to run again."""
    named = [(name, fix) for name, fix in zip(failed, fixes, strict=True) if fix]
    listed = named[0][1] if len(named) == 1 else "; ".join(f"{name}: {fix}" for name, fix in named)
    return f"{listed}; then run `inv build verify.build`" if listed else "run `inv build verify.build`"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _short(argv: Sequence[str], limit: int = 160) -> str:
    text = display(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Faults: the link to the host, the lock, a bound that ran out.
class LinkLost(DeployError):
    """The SSH connection to the host stopped answering or closed mid-task; nothing more is sent over it."""

    def __init__(self, host: str, why: str):
        self.host = host
        super().__init__(f"the SSH link to {host} was lost ({why}); the deploy stopped where it was",
                         hint="what serves keeps serving; run the same command again once the host answers "
                              "(the lock this one held is taken over as abandoned)")


class LockLost(DeployError):
    """The deploy lock no longer names this deploy (taken over, or removed by ``deploy.unlock --force``)."""

    def __init__(self, where: str, why: str):
        super().__init__(f"[{where}] the deploy lock is no longer this deploy's ({why}); nothing more was changed",
                         hint="another deploy may be running: see `inv deploy.status`, then deploy again")


class DiskFull(DeployError):
    """The host ran out of disk space while the toolkit wrote there; what it had written is removed again."""

    SAID = ("no space left on device", "disk quota exceeded")

    def __init__(self, where: str, what: str, directory: str):
        super().__init__(f"[{where}] no space left on the host for {what} under {directory}; "
                         "nothing running was changed and nothing of it is left",
                         hint=f"free space there (df -h {directory}), or lower keep_releases/keep_backups; "
                              "preflight refuses a deploy below deploy.min_free_mb")

    @classmethod
    def said_by(cls, stderr: str) -> bool:
        lowered = stderr.lower()
        return any(words in lowered for words in cls.SAID)
