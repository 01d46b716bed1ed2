"""Taking a backup of the running stack, on its own host:

    serving app container ─▶ private directory <backup_dir>/<env>/.incoming-<UTC time>-<rev12>/
        ─▶ database (backup_command, default: an online SQLite copy) ─▶ docker logs of each container
        ─▶ the compose file and the .env ─▶ sha256 + sizes ─▶ SHA256SUMS, manifest.json
        ─▶ sealed: renamed to <UTC time>-<rev12>/ ─▶ retention (keep_backups)

Everything is written on the host by commands run there, so a backup over SSH moves no data through this
machine (``--download`` does that, on request). Every file is mode 600 in a 700 directory. A failure removes
the partial directory, and one a killed run left behind is never listed, verified or restored, only pruned:
a backup either is complete, sealed under its id, or is not one.
"""

from __future__ import annotations

import dataclasses
import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from droplet_deploy import __version__
from droplet_deploy.backup import copies, postgres, store
from droplet_deploy.backup import manifest as mf
from droplet_deploy.backup.verify import verify
from droplet_deploy.commands import backup as cmd
from droplet_deploy.commands import files
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import (
    BackupError,
    BackupInvalid,
    CommandFailed,
    DeployError,
    NoDatabaseFile,
    NothingToBackUp,
)
from droplet_deploy.engines.snapshot import Container, Snapshot
from droplet_deploy.session import Session
from droplet_deploy.transaction import history
from droplet_deploy.transaction import retention as releases
from droplet_deploy.transport.target import Target

TOOL = f"droplet-deploy {__version__}"
# Two backups in the same second would share an id; the loser waits for the next second.
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class Summary:
    manifest: mf.Manifest
    path: str
    seconds: float
    pruned: list[str] = field(default_factory=list)
    copies: list[str] = field(default_factory=list)

    def line(self, where: str) -> str:
        m = self.manifest
        return (f"backup {m.id}: {mf.human_size(m.size)} in {self.seconds:.1f}s "
                f"({m.env} on {where}, revision {m.revision[:12]}, {len(m.files)} files)"
                + (f"; copied to {', '.join(self.copies)}" if self.copies else "")
                + (f"; pruned {len(self.pruned)} old" if self.pruned else ""))


@dataclass(frozen=True)
class _Layout:
    """What goes where in one backup directory, decided from the settings alone."""

    kind: str  # "sqlite" (the built-in online copy), "postgres" (pg_dump) or "command" (the user's backup_command)
    db_file: str
    command: list[str]
    compose_copy: str
    env_copy: str | None

    @classmethod
    def of(cls, settings: Settings) -> _Layout:
        custom = settings.backup_command
        kind = "command" if custom else postgres.KIND if postgres.is_postgres(settings) else "sqlite"
        return cls(
            kind=kind,
            db_file={"command": mf.DUMP_FILE, postgres.KIND: postgres.DUMP_FILE}.get(kind, mf.SQLITE_FILE),
            # db_path is set for a sqlite backup: callers check has_database() first.
            command=list(custom) if custom else [] if kind == postgres.KIND else cmd.snapshot(settings.db_path or ""),
            compose_copy=posixpath.join("config", posixpath.basename(settings.compose_file)),
            env_copy=posixpath.join("config", posixpath.basename(settings.env_file)) if settings.env_file else None,
        )


def has_database(settings: Settings) -> bool:
    """False for an app configured without one (``db_path: null`` and no ``backup_command`` or ``db_kind``)."""
    return bool(settings.backup_command) or postgres.is_postgres(settings) or settings.db_path is not None


def create(session: Session, *, note: str = "", protect: Sequence[str] = ()) -> Summary | None:
    """Back up the running stack. None under ``--dry`` (the commands are printed, nothing is written).

    Raises NothingToBackUp when the app has no database or no app container runs, NoDatabaseFile when db_path
    names no file, BackupError (nothing kept) on any other failure.
    """
    settings, target = session.settings, session.target
    session.backend.require("backups")
    if not has_database(settings):
        raise NothingToBackUp(f"nothing to back up in {settings.env}: db_path is null and no backup_command is set",
                              hint="set db_path (a SQLite file in the app container) or backup_command if the app "
                                   "has a database")
    snapshot = session.backend.backup_snapshot()
    serving = snapshot.serving
    if serving is None:
        raise NothingToBackUp(f"no running {settings.app_service} container in {settings.project} "
                              f"on {session.where}: nothing to back up")
    source = _source(session, snapshot)
    started = time.monotonic()
    created, backup_id, incoming = _claim(target, settings, serving.revision)
    directory = store.path_of(settings, backup_id)
    layout = _Layout.of(settings)
    done = False
    try:
        names, dumped = _gather(session, snapshot, source, incoming, layout)
        if target.dry:
            session.ui.note(f"[dry-run] [{session.where}] write {mf.SUMS} and {mf.MANIFEST} in {incoming}")
            target.run(cmd.seal(incoming, directory))
            done = True
            return None
        found = _write_manifest(session, serving, source, incoming, names, layout, dumped, backup_id=backup_id,
                                created=created, note=note, started=started)
        target.run(cmd.seal(incoming, directory))  # last: only now is it a backup
        done = True
    except CommandFailed as exc:
        raise BackupError(f"backup of {settings.project} on {session.where} failed: {exc}",
                          hint="nothing was kept") from None
    finally:
        if not done:
            target.run(files.remove_tree(incoming), check=False)

    _check_new(session, found)
    sent = copies.send(session, found)
    seconds = time.monotonic() - started
    try:
        # Never the backup a rollback --with-data would restore (deploy.releases.needed).
        spare = releases.needed(history.recent(target, session.state_dir, releases.HISTORY_LINES),
                                serving.revision).backups
        pruned = store.prune(target, settings, settings.keep_backups, protect=(backup_id, *protect, *spare))
    except DeployError as exc:
        # The backup itself is complete; failing to delete old ones must not turn it into a failure.
        session.ui.note(f"retention: could not prune old backups: {exc}")
        pruned = []
    return Summary(found, directory, seconds, pruned, sent)


def _source(session: Session, snapshot: Snapshot) -> Container:
    """The container the database is read from: the newest running one of ``backup_service`` (the app's
    serving container by default)."""
    settings = session.settings
    service = postgres.service_of(settings)
    if service == settings.app_service and snapshot.serving is not None:
        return snapshot.serving
    running = [c for c in snapshot.of(service) if c.running]
    if not running:
        raise NothingToBackUp(f"no running {service} container (backup_service) in {settings.project} "
                              f"on {session.where}: nothing to back up",
                              hint=f"start the {service} service, or set backup_service to the service that holds "
                                   "the database")
    return running[-1]


def _check_new(session: Session, found: mf.Manifest) -> None:
    """The check right after a backup is sealed, recorded with it; retention runs only after it passed.

    A PostgreSQL dump is proven by a restore into a scratch server (``verify``). A SQLite copy passed its
    integrity check as it was made, and a backup_command's dump can only be checked by its sha256, just taken.
    """
    target, settings = session.target, session.settings
    if found.database.get("kind") != postgres.KIND:
        how = "integrity_check when copied" if found.is_sqlite else "sha256 when written"
        store.record_verdict(target, settings, found.id, True, how)
        return
    with session.ui.step("verify", f"{found.id}: restore into a scratch server"):
        try:
            verify(session, found.id, lambda check: session.ui.note(f"{check.name}: {check.detail}"))
        except BackupInvalid as exc:
            problems = "; ".join(exc.problems)
            raise BackupError(f"backup {found.id} was made but failed its restore test: {problems}",
                              hint="it is kept, marked failed, and no older backup was pruned") from None


def _gather(session: Session, snapshot: Snapshot, source: Container, directory: str,
            layout: _Layout) -> tuple[list[str], postgres.Dumped | None]:
    """Write the database copy, the logs and the config files into ``directory``; their relative paths."""
    settings, target = session.settings, session.target
    target.run(cmd.make_subdirs(directory, ["logs", "config"]))
    dumped = None
    try:
        if layout.kind == postgres.KIND:
            dumped = postgres.dump(session, source, posixpath.join(directory, layout.db_file))
        else:
            run_quietly(target, cmd.dump_with(source.id, layout.command, posixpath.join(directory, layout.db_file)))
    except CommandFailed as exc:
        if layout.kind == "sqlite" and exc.exit_status == cmd.NO_DATABASE_FILE:
            raise NoDatabaseFile(
                f"no SQLite database at db_path {settings.db_path} in {source.name}",
                hint="set deploy.db_path to the app's database file (its APP_DB_PATH), backup_command for another "
                     "database, or db_path: null for an app without one") from None
        tail = f": {exc.stderr.strip().splitlines()[-1][:300]}" if exc.stderr.strip() else ""
        raise BackupError(f"backup of {settings.project} on {session.where} failed: the database copy "
                          f"`{cmd.shown(layout.command)}` in {source.name} exited {exc.exit_status}{tail}",
                          hint="nothing was kept") from None
    names = [layout.db_file]
    for container in snapshot.containers:
        log = posixpath.join("logs", mf.safe_name(container.name) + ".log")
        target.run(cmd.save_logs(container.id, posixpath.join(directory, log)))
        names.append(log)
    target.run(cmd.copy_private(settings.compose_file, posixpath.join(directory, layout.compose_copy)))
    names.append(layout.compose_copy)
    if layout.env_copy and settings.env_file_path:
        target.run(cmd.copy_private(settings.env_file_path, posixpath.join(directory, layout.env_copy)))
        names.append(layout.env_copy)
    return names, dumped


def _write_manifest(session: Session, serving: Container, source: Container, directory: str, names: list[str],
                    layout: _Layout, dumped: postgres.Dumped | None, *, backup_id: str, created: datetime, note: str,
                    started: float) -> mf.Manifest:
    """Checksums and sizes measured on the host, then SHA256SUMS and the manifest (the caller seals it)."""
    settings, target = session.settings, session.target
    sums = mf.parse_sums(target.probe(cmd.checksums(directory, names), check=True).stdout)
    sizes = mf.parse_sizes(target.probe(cmd.sizes(directory, names), check=True).stdout)
    if sizes.get(layout.db_file) == 0:
        raise BackupError(f"the database copy from {source.name} is empty (0 bytes): an empty dump is not kept",
                          hint="nothing was kept; run the backup command in that container by hand to see why")
    database: dict[str, str] = (postgres.record(source, dumped) if dumped is not None else
                                {"kind": layout.kind, "file": layout.db_file, "container": source.name,
                                 **({"source": settings.db_path or ""} if layout.kind == "sqlite" else {})})
    try:
        found = mf.build(
            backup_id=backup_id, env=settings.env, project=settings.project, created_at=mf.iso(created),
            revision=serving.revision or "unknown", image=serving.image, tool=TOOL,
            # A backup_command is not recorded: its argv may hold a password.
            database=database,
            sums=sums, sizes=sizes, private=[layout.env_copy] if layout.env_copy else [], note=note,
            duration_s=time.monotonic() - started,
        )
    except ValueError as exc:
        raise BackupError(f"backup {backup_id}: {exc}") from None
    if dumped is not None:
        found = dataclasses.replace(found, extra={"rows": dumped.rows})
    target.write_text(posixpath.join(directory, mf.SUMS), mf.sums_text(found), mode=0o600)
    target.write_text(posixpath.join(directory, mf.MANIFEST), found.to_json(), mode=0o600)
    return found


def _claim(target: Target, settings: Settings, revision: str | None) -> tuple[datetime, str, str]:
    """A new, private directory for a backup, created exclusively under its temporary name: (time, id, path)."""
    target.run(files.mkdir_p(store.root(settings)))
    for attempt in range(_CLAIM_ATTEMPTS):
        created = datetime.now(timezone.utc)
        backup_id = mf.new_id(created, revision)
        incoming = store.incoming_path(settings, backup_id)
        if target.run(cmd.claim_dir(incoming, store.path_of(settings, backup_id)), check=False).ok:
            return created, backup_id, incoming
        if attempt + 1 < _CLAIM_ATTEMPTS:
            time.sleep(1.0)
    raise BackupError(f"could not create a backup directory in {store.root(settings)} on {target.name}",
                      hint="check that it is writable and not full")


def run_quietly(target: Target, argv: Sequence[str]):
    """Run a command that carries a constant script, echoed (and reported when it fails) with the script shown
    by name. The full text is printed under ``--dry`` (where seeing the exact command is the point)."""
    return target.run(argv, shown=cmd.shown(argv))
