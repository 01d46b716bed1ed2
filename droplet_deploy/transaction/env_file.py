"""The env file's fingerprint: its sha256, computed where the stack runs, so that the history can say which
version of the file the app containers were started with and ``deploy.status`` that it changed since, without a
single value of it leaving the host.

Compose reads the env file when it *creates* a container: a deploy, a rollback and a rolling restart start the app
from the file as it is then, while ``compose restart`` (``deploy.restart --hard``) and ``deploy.start`` keep the
environment each container already has. Their history lines record ``env_sha256_after`` accordingly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from droplet_deploy.commands import files
from droplet_deploy.core.config import Settings
from droplet_deploy.transaction import history
from droplet_deploy.transaction.history import Record
from droplet_deploy.transport.target import Target

# History actions that create the app containers from the env file as it is at that moment.
APPLYING = ("deploy", "rollback", "restart")
# How far back the history is read for the last checksum applied.
LOOKBACK = 200
# sha256sum's line: the digest, two spaces, the name (a leading backslash when the name had to be escaped).
_DIGEST_RE = re.compile(r"^\\?([0-9a-f]{64})\s")


def parse_sha256(stdout: str) -> str:
    """The digest in ``sha256sum``'s output, or "" when there is none."""
    found = _DIGEST_RE.match(stdout)
    return found.group(1) if found else ""


def checksum(target: Target, settings: Settings) -> str:
    """The env file's sha256 on the target; "" when none is configured or it cannot be read."""
    path = settings.env_file_path
    if not path:
        return ""
    result = target.probe(files.sha256(path))
    return parse_sha256(result.stdout) if result.ok else ""


def last_applied(records: Sequence[Record]) -> Record | None:
    """The newest successful change that recorded the checksum it started the app containers with."""
    return next((r for r in reversed(records)
                 if r.result == "ok" and r.action in APPLYING and r.env_sha256_after), None)


@dataclass(frozen=True)
class Drift:
    """The env file now against the checksum the running app containers were started with."""

    path: str
    now: str  # "" when the file cannot be read
    applied: Record | None  # the change that recorded what runs; None when none did

    @property
    def before(self) -> str:
        return self.applied.env_sha256_after if self.applied else ""

    @property
    def changed(self) -> bool:
        return bool(self.now and self.before and self.now != self.before)

    def describe(self) -> str:
        """One line for the output and ``deploy.status``; digests shortened, values never known."""
        if not self.now:
            return f"{self.path}: cannot be read on the target"
        if self.applied is None:
            return f"{self.path}: sha256 {self.now[:12]}, no deploy or restart recorded the one that runs"
        last = self.applied.action
        if self.changed:
            return f"{self.path}: CHANGED since the last {last} (sha256 {self.before[:12]} -> {self.now[:12]})"
        return f"{self.path}: unchanged since the last {last} (sha256 {self.now[:12]})"


def drift(target: Target, settings: Settings, state_dir: str,
          records: Sequence[Record] = ()) -> Drift | None:
    """The env file against the history (``records`` when they hold an applied checksum, else a deeper read);
    None when no env file is configured."""
    path = settings.env_file_path
    if not path:
        return None
    applied = last_applied(records) or last_applied(history.recent(target, state_dir, LOOKBACK))
    return Drift(path, checksum(target, settings), applied)


def fields(found: Drift | None, *, applied: bool = True) -> dict[str, str]:
    """The history fields of a change: ``applied`` when it created the app containers from the file as it is now,
    else they keep what they were started with."""
    if found is None:
        return {}
    return {"env_sha256_before": found.before, "env_sha256_after": found.now if applied else found.before}


def returning_line(found: Drift | None, kept_sha256: str, release_id: str) -> str | None:
    """What a rollback says when the env file kept with the release it returns to is not today's: the values
    changed since (a rotated secret included) come back with it. None when they are the same, or either is unknown."""
    if found is None or not kept_sha256 or not found.now or kept_sha256 == found.now:
        return None
    return (f"the app starts with the env file kept with release {release_id} (sha256 {kept_sha256[:12]}), not "
            f"today's {found.path} (sha256 {found.now[:12]}): values changed since, rotated secrets included, come "
            "back; deploy again to run with today's")
