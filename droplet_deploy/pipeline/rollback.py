"""Manual rollback: put an earlier release back in service, all of it: its kept image, and the compose file,
override and env file it ran with (``transaction.release_files``); with ``--with-data`` its data too.

    history ─▶ choose the release (the one that served before the current one, or ``--to REV``)
            ─▶ its kept image exists and carries that revision ─▶ its kept files
            ─▶ (--with-data: the backup taken before the serving release went in, verified) ─▶ lock ─▶ preflight
            ─▶ (--with-data: backup of the current state) ─▶ the same zero-downtime rollout as a deploy, with the
               release's own files ─▶ history line ``action: rollback``
            ─▶ (--with-data: that backup restored into the release now serving, line ``action: restore``) ─▶ unlock

Nothing is rebuilt: the rollback is only as fast and as safe as the image it finds, so that image (and the backup
to restore) is checked before anything running is touched, and a pruned one is reported with what is still kept.
The data follows the code: it is restored once the release it belongs to serves and has proved itself, so a
rollout that fails leaves the newer release serving with its own data.
"""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.backup.create import create
from droplet_deploy.backup.manifest import Manifest
from droplet_deploy.backup.restore import put_back, restorable
from droplet_deploy.commands import docker
from droplet_deploy.commands import files as file_cmd
from droplet_deploy.core.errors import BackupError, RollbackImpossible
from droplet_deploy.session import Session
from droplet_deploy.steps import images
from droplet_deploy.steps.images import Image
from droplet_deploy.steps.revision import Revision
from droplet_deploy.transaction import env_file as envfile
from droplet_deploy.transaction import history
from droplet_deploy.transaction import release_files as kept
from droplet_deploy.transaction.frame import Transaction
from droplet_deploy.transaction.retention import HISTORY_LINES, choose, in_service

__all__ = ["check_kept", "choose", "kept_listing", "rollback"]


def kept_listing(kept_images: Sequence[Image], serving: str | None) -> str:
    """Kept tags, newest first, the serving one marked: what a user can still roll back to."""
    serving_tag = Revision.of(serving).tag if serving else None
    return ", ".join(i.tag + (" (serving)" if i.tag == serving_tag else "") for i in kept_images) or "none"


def check_kept(session: Session, release: history.Record, serving: str | None) -> None:
    """The release's image is still here under its tag and carries its revision; else one clear line."""
    label = "{{index .Config.Labels \"" + docker.REVISION_LABEL + "\"}}"
    found = session.target.probe(docker.image_inspect(release.image, label))
    if not found.ok:
        kept_images = images.kept_images(session.target, session.settings)
        raise RollbackImpossible(
            f"image {release.image} of revision {release.revision[:12]} is no longer kept (pruned); "
            f"kept revisions: {kept_listing(kept_images, serving)}",
            hint=f"roll back to one of them with --to REV; deploy.keep_images keeps the newest "
                 f"{session.settings.keep_images}")
    if found.stdout.strip() != release.revision:
        raise RollbackImpossible(
            f"image {release.image} is labelled revision {found.stdout.strip()[:12] or 'none'}, "
            f"not {release.revision[:12]}: the tag was reused", hint="deploy that revision again instead")


def data_backup(records: Sequence[history.Record], serving: str | None) -> str:
    """The backup ``--with-data`` restores: the one taken just before the serving release went into service."""
    current = in_service(records, serving)
    if current is None or not current.backup:
        shown = (serving or "nothing")[:12]
        raise RollbackImpossible(f"--with-data: no backup was taken before {shown} went into service "
                                 "(its history line names none)",
                                 hint="roll back without --with-data, or restore one yourself with "
                                      "`inv backup.restore ID` (see `inv backup.list`)")
    return current.backup


def rollback(session: Session, *, to: str | None = None, health_timeout: float | None = None,
             with_data: bool = False) -> None:
    ui, settings, target = session.ui, session.settings, session.target
    serving_container = session.backend.snapshot().serving
    serving = serving_container.revision if serving_container else None
    records = history.recent(target, session.state_dir, HISTORY_LINES)
    release = choose(records, serving, to)
    backup_id = data_backup(records, serving) if with_data else None
    ui.line(f"rolling back {settings.env} on {session.where} from {(serving or 'nothing')[:12]} "
            f"to {release.revision[:12]} ({release.image})" + (" with its data" if with_data else "")
            + (" (dry run: printing commands, changing nothing)" if target.dry else ""))
    check_kept(session, release, serving)
    data = restorable(session, backup_id, lambda c: ui.check(c.ok, c.name, c.detail)) if backup_id else None
    files = kept.read(target, session.state_dir, release.release)
    if files is None:
        ui.note(f"no files kept with {release.revision[:12]} (deployed before releases kept them, or pruned): "
                "using the compose file and env file of today")

    back_to = kept.Rollback(release, files)
    with Transaction(session, "rollback", release.revision, release.image) as txn:
        with ui.step("preflight", f"[{session.where}]"):
            session.backend.run_preflight(release.image, back_to=back_to)
        with txn.recorded() as entry:
            entry["release"] = files.id if files else ""
            if data is not None:
                entry["backup"] = _back_up_current(session, data)
            entry.update(_env_fields(session, records, files))
            with ui.step("rollout"):
                entry["proof"] = session.backend.rollout(release.image, release.revision, timeout=health_timeout,
                                                         back_to=back_to).proof
        if data is not None:
            with txn.recorded(action="restore", backup=data.id):
                _restore(session, data, entry.get("backup", ""))
        verb = "planned rollback to" if target.dry else "rolled back to"
        with_what = f" with the data of backup {data.id}" if data is not None else ""
        txn.summary = f"{verb} {release.revision[:12]}{with_what} on {settings.env} ({session.where})"
        txn.suffix = f", revision proven by {entry['proof']}" if entry["proof"] else ""


def _back_up_current(session: Session, data: Manifest) -> str:
    """The state being left, first: rolling back again ``--with-data`` brings it back. Returns its id."""
    with session.ui.step("backup", "of the current state first"):
        safety = create(session, note=f"before rollback with the data of {data.id}", protect=(data.id,))
        if safety is None:
            return ""
        session.ui.note(safety.line(session.where))
        return safety.manifest.id


def _restore(session: Session, data: Manifest, safety: str) -> None:
    serving = session.backend.backup_snapshot().serving
    if serving is None:
        if session.target.dry:
            session.ui.note(f"would restore backup {data.id} into the app container serving after the rollback")
            return
        raise RollbackImpossible(f"no app container serves after the rollback to restore {data.id} into",
                                 hint="see `inv deploy.status`")
    try:
        put_back(session, data, serving)
    except BackupError as exc:
        saved = f"the state before is backup {safety}" if safety else "the state before was not backed up"
        raise BackupError(f"rolled back, but the data was not restored: {exc.message}",
                          hint=f"{saved}; restore again with `inv backup.restore {data.id}`") from None


def _env_fields(session: Session, records, files: kept.Kept | None) -> dict[str, str]:
    """The env file's checksums for the history: the containers a rollback starts read the env file kept with the
    release when there is one, not today's."""
    drift = envfile.drift(session.target, session.settings, session.state_dir, records)
    found = envfile.fields(drift)
    if found and files is not None and files.env_file:
        digest = session.target.probe(file_cmd.sha256(files.env_file))
        found["env_sha256_after"] = envfile.parse_sha256(digest.stdout) if digest.ok else ""
        returning = envfile.returning_line(drift, found["env_sha256_after"], files.id)
        if returning:
            session.ui.note(returning)
    return found
