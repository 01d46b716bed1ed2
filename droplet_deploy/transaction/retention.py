"""Which release a rollback goes back to, and what retention must therefore keep. Pure: history lines and the
serving revision in, answers out.

A release that went into service (a successful deploy or rollback) is one history line: its revision, its image,
``release`` (the id of its kept files in the state dir, ``deploy.kept``) and ``backup`` (the backup taken just
before it went into service, i.e. the data of the release it replaced). ``deploy.rollback`` returns to the release
``choose`` names; ``--with-data`` also restores the backup of the line that put the serving release in service.
Retention (images, kept files, release directories on a host, backups) spares all of that: ``needed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from droplet_deploy.core.errors import DeployError, RollbackImpossible, UsageError
from droplet_deploy.transaction import history
from droplet_deploy.transaction.history import Record

if TYPE_CHECKING:  # steps pass their session in; nothing here opens one
    from droplet_deploy.session import Session

# Rollback reads further back than `deploy.status` shows: the release it wants may be many lines ago.
HISTORY_LINES = 1000
# The history actions that put a release in service (restarts and restores keep the one that runs).
RELEASING = ("deploy", "rollback")


def good(records: Iterable[Record]) -> list[Record]:
    """The lines that put a release in service and can be returned to (a line without its image cannot)."""
    return [r for r in records if r.result == "ok" and r.image and r.action in RELEASING]


def in_service(records: Sequence[Record], serving: str | None) -> Record | None:
    """The line that put the serving revision in service: the latest good one of that revision."""
    if serving is None:
        return None
    return next((r for r in reversed(good(records)) if r.revision == serving), None)


def choose(records: Sequence[Record], serving: str | None, to: str | None = None) -> Record:
    """The release to go back to.

    Without ``to``: the latest successful release (deploy or rollback) before the one that put ``serving``
    in service, skipping any that ran ``serving`` itself. Rolling back twice therefore returns to where
    you started, like ``cd -``. With ``to``: the successful release whose revision starts with it.
    """
    found = good(records)
    if to:
        return _by_prefix(found, serving, to)
    if serving is None:
        raise RollbackImpossible("no app container is running, so there is no previous release to go back "
                                 f"from; releases: {_listing(found, serving)}", hint="name one with --to REV")
    current = max((i for i, r in enumerate(found) if r.revision == serving), default=len(found))
    earlier = [r for r in found[:current] if r.revision != serving]
    if not earlier:
        raise RollbackImpossible(f"no successful release before {serving[:12]} in the history",
                                 hint="a rollback needs an earlier deploy to go back to")
    return earlier[-1]


@dataclass(frozen=True)
class Needed:
    """What retention must not remove: the newest good release's way back (and the one serving)."""

    images: frozenset[str] = field(default_factory=frozenset)
    releases: frozenset[str] = field(default_factory=frozenset)  # ids of kept files in the state dir
    revisions: frozenset[str] = field(default_factory=frozenset)  # for release directories on a host
    backups: frozenset[str] = field(default_factory=frozenset)


def needed(records: Sequence[Record], serving: str | None) -> Needed:
    """The release a plain ``deploy.rollback`` would bring back (its image, kept files and release directory),
    the serving one's kept files, and the backup ``--with-data`` would restore.

    With nothing serving (the stack is down, or could not be read) the newest release that went into service
    stands in for it: retention then spares what bringing the stack back would need.
    """
    if serving is None:
        found = good(records)
        serving = found[-1].revision if found else None
    current = in_service(records, serving)
    try:
        back = choose(records, serving)
    except RollbackImpossible:
        back = None
    lines = [r for r in (current, back) if r is not None]
    return Needed(
        images=frozenset(r.image for r in lines),
        releases=frozenset(r.release for r in lines if r.release),
        revisions=frozenset(r.revision for r in lines),
        backups=frozenset([current.backup] if current is not None and current.backup else []),
    )


def needed_now(session: Session) -> Needed:
    """``needed`` for what serves now, from the history on the target."""
    try:
        serving = session.backend.snapshot().serving
    except DeployError:  # the engine cannot be read: judged from the history alone (see ``needed``)
        serving = None
    records = history.recent(session.target, session.state_dir, HISTORY_LINES)
    return needed(records, serving.revision if serving else None)


def _by_prefix(found: Sequence[Record], serving: str | None, to: str) -> Record:
    matches = _latest_per_revision(r for r in found if r.revision.startswith(to))
    if not matches:
        raise RollbackImpossible(f"no successful release of {to!r} in the history; "
                                 f"releases: {_listing(found, serving)}", hint="pick one with --to REV")
    if len(matches) > 1:
        raise UsageError(f"--to {to!r} matches {len(matches)} releases: "
                         f"{', '.join(r.revision[:12] for r in matches)}", hint="give more of the revision")
    if matches[0].revision == serving:
        raise UsageError(f"revision {serving[:12]} is already serving; releases: {_listing(found, serving)}",
                         hint="pick another with --to REV")
    return matches[0]


def _latest_per_revision(records: Iterable[Record]) -> list[Record]:
    latest: dict[str, Record] = {}
    for record in records:
        latest[record.revision] = record
    return list(latest.values())


def _listing(found: Sequence[Record], serving: str | None, limit: int = 8) -> str:
    newest = list(reversed(_latest_per_revision(found)))
    newest.sort(key=lambda r: r.started_at, reverse=True)
    shown = [r.revision[:12] + (" (serving)" if r.revision == serving else "") for r in newest[:limit]]
    return ", ".join(shown) if shown else "none recorded"
