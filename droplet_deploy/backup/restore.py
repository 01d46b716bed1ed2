"""Putting a backup's database back into the running stack:

    verify the backup (checksums, integrity) ─▶ confirm ─▶ deploy lock ─▶ backup of the current state
        ─▶ restore into the live database ─▶ history line ``action: restore`` ─▶ unlock

The SQLite restore goes through the backup API into the live file, from inside the running app container,
rather than stopping the app and swapping the file, because:
- it is one write transaction on the live database: readers see the old data or the restored data, never a
  mix, and a write arriving meanwhile waits on SQLite's lock and lands after it instead of being lost in a swap;
- swapping a WAL database's file is how databases get corrupted: a ``-wal``/``-shm`` left from the old file is
  replayed into the new one; the backup API works through SQLite's own locking and WAL;
- it runs as the app's user, so the live file keeps its owner and mode;
- nothing stops, so the proxy keeps serving, and it works the same on a volume just recreated empty.
A custom ``restore_command`` reads the dump on stdin instead. A ``db_kind: postgres`` dump is loaded with
``pg_restore`` in the db service's container, in one transaction, with the writers stopped (``writers``).
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass

from droplet_deploy.backup import manifest as mf
from droplet_deploy.backup import postgres, store, writers
from droplet_deploy.backup.create import Summary, create, run_quietly
from droplet_deploy.backup.verify import Report, verify
from droplet_deploy.commands import backup as cmd
from droplet_deploy.core.errors import BackupError, CommandFailed
from droplet_deploy.engines.snapshot import Container
from droplet_deploy.session import Session
from droplet_deploy.transaction.frame import Transaction


@dataclass(frozen=True)
class Restored:
    manifest: mf.Manifest
    safety: Summary | None
    seconds: float


def restore(session: Session, backup_id: str, *, confirm: Callable[[mf.Manifest], bool],
            report: Report) -> Restored | None:
    """Restore ``backup_id``; None when ``confirm`` says no (nothing was changed)."""
    found = restorable(session, backup_id, report)
    serving = _serving_or_fail(session)
    if not confirm(found):
        return None

    started = time.monotonic()
    with Transaction(session, "restore", serving.revision or "unknown", serving.image, backup=backup_id) as txn:
        serving = _serving_or_fail(session)  # again, under the lock: a deploy may have finished meanwhile
        safety = None
        with txn.recorded():
            try:
                with session.ui.step("backup", "of the current state first"):
                    safety = create(session, note=f"before restore of {backup_id}", protect=(backup_id,))
                    if safety is not None:
                        session.ui.note(safety.line(session.where))
                put_back(session, found, serving)
            except BackupError as exc:
                raise BackupError(exc.message, hint=_after_failure(safety)) from None
    return Restored(found, safety, time.monotonic() - started)


def restorable(session: Session, backup_id: str, report: Report) -> mf.Manifest:
    """``backup_id``, verified, and this environment's settings able to restore it; else one clear line."""
    settings = session.settings
    session.backend.require("restore")
    found = verify(session, backup_id, report)  # a damaged backup is never restored
    if found.database.get("kind") == postgres.KIND:
        if not postgres.is_postgres(settings):
            raise BackupError(f"backup {backup_id} holds a PostgreSQL dump but {settings.env} is not set up for one",
                              hint=f"set deploy.environments.{settings.env}.db_kind: postgres and backup_service")
        return found
    if not found.is_sqlite and not settings.restore_command:
        raise BackupError(f"backup {backup_id} was made by backup_command; restoring it needs restore_command",
                          hint=f"set deploy.environments.{settings.env}.restore_command (it reads the dump on stdin)")
    if found.is_sqlite and settings.db_path is None:
        raise BackupError(f"backup {backup_id} holds a SQLite database but db_path is null",
                          hint="set deploy.db_path to the database file inside the app container to restore it")
    return found


def put_back(session: Session, found: mf.Manifest, serving: Container) -> None:
    """The restore step: ``found``'s database into the live one, through ``serving``. Under the caller's lock,
    after the caller backed up the current state."""
    settings = session.settings
    if found.database.get("kind") == postgres.KIND:
        db = postgres.db_container(session)
        if db is None:
            raise BackupError(f"no running {postgres.service_of(settings)} container to restore into on "
                              f"{session.where}", hint="start the db service, then restore")
        entry = found.entry(found.database_file)
        with writers.stopped(session, serving):
            with session.ui.step("restore", f"{found.id}: {mf.human_size(entry.size if entry else 0)} dump "
                                 f"with pg_restore into {db.name}"):
                postgres.restore(session, found, db)
        return
    with session.ui.step("restore", found.id):
        entry = found.entry(found.database_file)
        source = posixpath.join(store.path_of(settings, found.id), found.database_file)
        if found.is_sqlite and settings.db_path:
            command = cmd.restore_into(settings.db_path, entry.sha256 if entry else "")
        elif not found.is_sqlite and settings.restore_command:
            command = list(settings.restore_command)
        else:  # restorable() refuses these before anything changes
            raise BackupError(f"backup {found.id} cannot be restored with the settings of {settings.env}")
        try:
            run_quietly(session.target, cmd.load_with(serving.id, command, source))
        except CommandFailed as exc:
            raise BackupError(f"restore of {found.id} on {session.where} failed: {exc}") from None


def _serving_or_fail(session: Session):
    session.backend.require("restore")
    serving = session.backend.backup_snapshot().serving
    if serving is None:
        settings = session.settings
        raise BackupError(f"no running {settings.app_service} container in {settings.project} on "
                          f"{session.where} to restore into",
                          hint="deploy first (the app creates an empty database), then restore")
    return serving


def _after_failure(safety: Summary | None) -> str:
    if safety is None:
        return "the current state was not backed up; nothing was restored"
    return f"the state before the restore is in backup {safety.manifest.id}"
