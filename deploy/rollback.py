"""Manual rollback: put an earlier release back in service from the image kept under its tag.

    history ─▶ choose the release (the one that served before the current one, or ``--to REV``)
            ─▶ its kept image exists and carries that revision ─▶ lock ─▶ preflight
            ─▶ the same zero-downtime rollout as a deploy ─▶ history line ``action: rollback`` ─▶ unlock

Nothing is rebuilt: the rollback is only as fast and as safe as the image it finds, so that image is checked
before anything running is touched, and a pruned one is reported with the revisions that are still kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import envfile, history, images
from .commands import docker
from .errors import RollbackImpossible, UsageError
from .images import Image
from .revision import Revision
from .session import Session
from .transaction import Transaction

# Rollback reads further back than `deploy.status` shows: the release it wants may be many lines ago.
HISTORY_LINES = 1000
# The history actions that put a release in service (restarts and restores keep the one that runs).
RELEASING = ("deploy", "rollback")


def choose(records: Sequence[history.Record], serving: str | None, to: str | None = None) -> history.Record:
    """The release to go back to. Pure: history lines and the serving revision in, one release out.

    Without ``to``: the latest successful release (deploy or rollback) before the one that put ``serving``
    in service, skipping any that ran ``serving`` itself. Rolling back twice therefore returns to where
    you started, like ``cd -``. With ``to``: the successful release whose revision starts with it.
    """
    # A line without its image cannot be rolled back to.
    good = [r for r in records if r.result == "ok" and r.image and r.action in RELEASING]
    if to:
        return _by_prefix(good, serving, to)
    if serving is None:
        raise RollbackImpossible("no app container is running, so there is no previous release to go back "
                                 f"from; releases: {_listing(good, serving)}", hint="name one with --to REV")
    current = max((i for i, r in enumerate(good) if r.revision == serving), default=len(good))
    earlier = [r for r in good[:current] if r.revision != serving]
    if not earlier:
        raise RollbackImpossible(f"no successful release before {serving[:12]} in the history",
                                 hint="a rollback needs an earlier deploy to go back to")
    return earlier[-1]


def _by_prefix(good: Sequence[history.Record], serving: str | None, to: str) -> history.Record:
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


def kept_listing(kept: Sequence[Image], serving: str | None) -> str:
    """Kept tags, newest first, the serving one marked: what a user can still roll back to."""
    serving_tag = Revision.of(serving).tag if serving else None
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


def rollback(session: Session, *, to: str | None = None, health_timeout: float | None = None) -> None:
    ui, settings, target = session.ui, session.settings, session.target
    serving_container = session.backend.snapshot().serving
    serving = serving_container.revision if serving_container else None
    records = history.recent(target, session.state_dir, HISTORY_LINES)
    release = choose(records, serving, to)
    ui.line(f"rolling back {settings.env} on {session.where} from {(serving or 'nothing')[:12]} "
            f"to {release.revision[:12]} ({release.image})"
            + (" (dry run: printing commands, changing nothing)" if target.dry else ""))
    check_kept(session, release, serving)

    with Transaction(session, "rollback", release.revision, release.image) as txn:
        session.backend.prepare_rollback(release)
        with ui.step("preflight", f"[{session.where}]"):
            session.backend.run_preflight(release.image)
        with txn.recorded() as entry, ui.step("rollout"):
            entry.update(envfile.fields(envfile.drift(target, settings, session.state_dir, records)))
            entry["proof"] = session.backend.rollout(release.image, release.revision, timeout=health_timeout).proof
        verb = "planned rollback to" if target.dry else "rolled back to"
        txn.summary = f"{verb} {release.revision[:12]} on {settings.env} ({session.where})"
        txn.suffix = f", revision proven by {entry['proof']}" if entry["proof"] else ""


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
