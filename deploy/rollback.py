"""Manual rollback: put an earlier release back in service from the image kept under its tag.

    history ─▶ choose the release (the one that served before the current one, or ``--to REV``)
            ─▶ its kept image exists and carries that revision ─▶ lock ─▶ preflight
            ─▶ the same zero-downtime rollout as a deploy ─▶ history line ``action: rollback`` ─▶ unlock

Nothing is rebuilt: the rollback is only as fast and as safe as the image it finds, so that image is checked
before anything running is touched, and a pruned one is reported with the revisions that are still kept.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable, Sequence

from . import history, images
from .commands import docker
from .errors import RollbackImpossible, UsageError
from .images import Image
from .revision import Revision
from .rollout import rollout
from .session import Session

# Rollback reads further back than `deploy.status` shows: the release it wants may be many lines ago.
HISTORY_LINES = 1000


def choose(records: Sequence[history.Record], serving: str | None, to: str | None = None) -> history.Record:
    """The release to go back to. Pure: history lines and the serving revision in, one release out.

    Without ``to``: the latest successful release (deploy or rollback) before the one that put ``serving``
    in service, skipping any that ran ``serving`` itself. Rolling back twice therefore returns to where
    you started, like ``cd -``. With ``to``: the successful release whose revision starts with it.
    """
    good = [r for r in records if r.result == "ok" and r.image]  # a line without its image cannot be rolled back to
    if to:
        matches = _latest_per_revision(r for r in good if r.revision.startswith(to))
        if not matches:
            raise RollbackImpossible(f"no successful release of {to!r} in the history; "
                                     f"releases: {_listing(good, serving)}", hint="pick one with --to REV")
        if len(matches) > 1:
            raise UsageError(f"--to {to!r} matches {len(matches)} releases: "
                             f"{', '.join(r.revision[:12] for r in matches)}", hint="give more of the revision")
        if matches[0].revision == serving:
            raise UsageError(f"revision {serving[:12]} is already serving; releases: {_listing(good, serving)}",
                             hint="pick another with --to REV")
        return matches[0]
    if serving is None:
        raise RollbackImpossible("no app container is running, so there is no previous release to go back "
                                 f"from; releases: {_listing(good, serving)}", hint="name one with --to REV")
    current = max((i for i, r in enumerate(good) if r.revision == serving), default=len(good))
    earlier = [r for r in good[:current] if r.revision != serving]
    if not earlier:
        raise RollbackImpossible(f"no successful release before {serving[:12]} in the history",
                                 hint="a rollback needs an earlier deploy to go back to")
    return earlier[-1]


def kept_listing(kept: Sequence[Image], serving: str | None) -> str:
    """Kept tags, newest first, the serving one marked: what a user can still roll back to."""
    serving_tag = _tag(serving) if serving else None
    return ", ".join(i.tag + (" (serving)" if i.tag == serving_tag else "") for i in kept) or "none"


def check_kept(session: Session, release: history.Record, serving: str | None) -> None:
    """The release's image is still here under its tag and carries its revision; else one clear line."""
    label = "{{index .Config.Labels \"" + docker.REVISION_LABEL + "\"}}"
    found = session.target.probe(docker.image_inspect(release.image, label))
    if not found.ok:
        kept = images.kept_images(session.target, session.settings)
        raise RollbackImpossible(
            f"image {release.image} of revision {release.revision[:12]} is no longer kept (pruned); "
            f"kept revisions: {kept_listing(kept, serving)}",
            hint=f"roll back to one of them with --to REV; deploy.keep_images keeps the newest "
                 f"{session.settings.keep_images}")
    if found.stdout.strip() != release.revision:
        raise RollbackImpossible(
            f"image {release.image} is labelled revision {found.stdout.strip()[:12] or 'none'}, "
            f"not {release.revision[:12]}: the tag was reused", hint="deploy that revision again instead")


def use_shipped_release(session: Session, release: history.Record) -> None:
    """Over SSH: run compose from the release directory that shipped this revision while it is still kept, so
    the compose and config files match the image; otherwise stay in the one in service and say so."""
    from .remote.release import list_releases, releases_dir

    tag = _tag(release.revision)
    shipped = [name for name in list_releases(session.target, session.settings) if name.endswith("-" + tag)]
    if shipped:
        session.target.cwd = posixpath.join(releases_dir(session.settings), shipped[-1])
        session.ui.note(f"using release directory {shipped[-1]}")
    else:
        session.ui.note(f"the release directory of {tag} was pruned: using the compose files in {session.target.cwd}")


def rollback(session: Session, *, to: str | None = None, health_timeout: float | None = None,
             prepare: Callable[[Session, history.Record], None] | None = None,
             preflight_extra: Callable[[Session], list] | None = None) -> history.Record:
    from .pipeline import run_preflight

    ui, settings, target = session.ui, session.settings, session.target
    started_wall, started = time.time(), time.monotonic()
    serving_container = session.stack.serving()
    serving = serving_container.revision if serving_container else None
    release = choose(history.recent(target, session.state_dir, HISTORY_LINES), serving, to)
    ui.line(f"rolling back {settings.env} on {session.where} from {(serving or 'nothing')[:12]} "
            f"to {release.revision[:12]} ({release.image})"
            + (" (dry run: printing commands, changing nothing)" if target.dry else ""))
    check_kept(session, release, serving)

    with session.locked(release.revision) as holder:
        if prepare:
            prepare(session, release)
        with ui.step("preflight", f"[{session.where}]"):
            run_preflight(session, release.image, preflight_extra(session) if preflight_extra else None)
        with history.recorded(target, session.state_dir, revision=release.revision, image=release.image,
                              env=settings.env, who=holder.holder, action="rollback"), ui.step("rollout"):
            rollout(session.stack, release.image, release.revision, say=ui.note, health_timeout=health_timeout)
    verb = "planned rollback to" if target.dry else "rolled back to"
    elapsed = time.monotonic() - started
    ui.line(f"{verb} {release.revision[:12]} on {settings.env} ({session.where}) in {elapsed:.1f}s")
    return history.Record(release.revision, release.image, settings.env, holder.holder, started_wall,
                          round(elapsed, 2), "ok", action="rollback")


def _tag(revision: str) -> str:
    dirty = revision.endswith("-dirty")
    return Revision(revision.removesuffix("-dirty"), dirty).tag


def _latest_per_revision(records) -> list[history.Record]:
    latest: dict[str, history.Record] = {}
    for record in records:
        latest[record.revision] = record
    return list(latest.values())


def _listing(good: Sequence[history.Record], serving: str | None, limit: int = 8) -> str:
    newest = list(reversed(_latest_per_revision(good)))
    newest.sort(key=lambda r: r.started_at, reverse=True)
    shown = [r.revision[:12] + (" (serving)" if r.revision == serving else "") for r in newest[:limit]]
    return ", ".join(shown) if shown else "none recorded"
