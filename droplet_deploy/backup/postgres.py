"""``db_kind: postgres``: the dump, its proof and its restore, all in containers of the database service's image.

    db container ──pg_dump --format=custom (one snapshot, with the row count of every table)──▶ <backup>/database.pgdump
    verify:  scratch volume + container of the db image (no network) ◀── pg_restore ── the dump
             ─▶ the same tables with the same row counts as the manifest recorded ─▶ container and volume removed
    restore: the dump ──pg_restore --clean --if-exists, one transaction──▶ db container

Nothing runs in the app container (its image needs no PostgreSQL client), nothing is copied onto the db
container's disk: the dump streams through ``docker exec`` into the backup directory on the host.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from droplet_deploy.backup import manifest as mf
from droplet_deploy.backup import store
from droplet_deploy.commands import backup as cmd
from droplet_deploy.commands import docker
from droplet_deploy.commands import postgres as pg
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import BackupError, CommandFailed, NothingToBackUp
from droplet_deploy.engines.snapshot import Container
from droplet_deploy.session import Session

KIND = "postgres"
DUMP_FILE = "database.pgdump"
# pg_dump's custom format starts with these bytes; anything else is not an archive pg_restore reads.
MAGIC = b"PGDMP"
SCRATCH_START_SECONDS = 120
RESTORE_TIMEOUT = 3600.0


def is_postgres(settings: Settings) -> bool:
    return settings.db_kind == KIND


def service_of(settings: Settings) -> str:
    """The compose service a backup runs in: ``backup_service``, else the app service."""
    return settings.backup_service or settings.app_service


@dataclass(frozen=True)
class Dumped:
    user: str
    db: str
    rows: dict[str, int]


def dump(session: Session, source: Container, dest: str) -> Dumped:
    """``pg_dump`` in ``source`` into ``dest`` on the host; refuses a dump that holds nothing."""
    settings, target = session.settings, session.target
    argv = cmd.dump_with(source.id, pg.dump(settings.db_user, settings.db_name), dest)
    try:
        result = target.run(argv, shown=cmd.shown(argv), timeout=RESTORE_TIMEOUT)
    except CommandFailed as exc:
        detail = pg.without_counts(exc.stderr).strip().splitlines()
        raise BackupError(f"pg_dump in {source.name} on {session.where} exited {exc.exit_status}"
                          + (f": {detail[-1][:300]}" if detail else ""),
                          hint="check db_user/db_name (or the service's POSTGRES_USER/POSTGRES_DB); nothing was kept") \
            from None
    if target.dry:
        return Dumped(settings.db_user or "", settings.db_name or "", {})
    named = pg.parse_database(result.stderr) or (settings.db_user or "", settings.db_name or "")
    rows = pg.parse_counts(result.stderr)
    head = target.probe(["head", "-c", str(len(MAGIC)), dest]).stdout.encode()
    if head != MAGIC:
        raise BackupError(f"pg_dump in {source.name} wrote no archive (an empty dump is not kept)",
                          hint="nothing was kept; run `pg_dump --format=custom` in the db service by hand to see why")
    if not rows:
        raise NothingToBackUp(f"database {named[1]} in {source.name} has no tables: an empty dump is not kept",
                              hint="back up once the app has created its tables (its first migration)")
    return Dumped(named[0], named[1], rows)


def record(source: Container, dumped: Dumped) -> dict[str, str]:
    """What the manifest says about the database (all strings; the row counts go beside it)."""
    return {"kind": KIND, "file": DUMP_FILE, "container": source.name, "service": source.service,
            "image": source.image, "user": dumped.user, "db": dumped.db}


def rows_of(found: mf.Manifest) -> dict[str, int]:
    rows = found.extra.get("rows")
    return {str(k): int(v) for k, v in rows.items()} if isinstance(rows, Mapping) else {}


def restore(session: Session, found: mf.Manifest, source: Container) -> None:
    """The dump over the live database in ``source``, in one transaction (a failure leaves it as it was)."""
    settings, target = session.settings, session.target
    dump_path = posixpath.join(store.path_of(settings, found.id), found.database_file)
    argv = cmd.load_with(source.id, pg.restore(settings.db_user, settings.db_name), dump_path)
    try:
        target.run(argv, shown=cmd.shown(argv), timeout=RESTORE_TIMEOUT)
    except CommandFailed as exc:
        tail = exc.stderr.strip().splitlines()
        raise BackupError(f"pg_restore of {found.id} into {source.name} on {session.where} failed"
                          + (f": {tail[-1][:300]}" if tail else ""),
                          hint="the restore ran in one transaction: the live database is as it was") from None


@dataclass(frozen=True)
class Proof:
    ok: bool
    detail: str


def prove(session: Session, found: mf.Manifest) -> Proof:
    """Restore the dump into a scratch server of the db image and compare its tables and row counts with the
    manifest's. The scratch container and its volume are removed whatever happens."""
    target = session.target
    user, db = found.database.get("user") or "postgres", found.database.get("db") or "postgres"
    image = _scratch_image(session, found)
    name = f"{session.settings.project}-verify-{uuid.uuid4().hex[:8]}"
    dump_path = posixpath.join(store.path_of(session.settings, found.id), found.database_file)
    try:
        target.run(pg.create_volume(name))
        target.run(pg.start_scratch(name, image, name, user, db))
        target.run(pg.wait_scratch(name, user, SCRATCH_START_SECONDS * 2), timeout=SCRATCH_START_SECONDS + 30)
        loaded = target.probe(cmd.load_with(name, pg.scratch_restore(user, db), dump_path), timeout=RESTORE_TIMEOUT)
        if not loaded.ok:
            tail = loaded.stderr.strip().splitlines()
            return Proof(False, f"pg_restore into a scratch {image} failed"
                         + (f": {tail[-1][:300]}" if tail else f" (exit {loaded.exit_status})"))
        counted = target.run(pg.count_scratch(name, user, db))
        return _compare(rows_of(found), pg.parse_count_lines(counted.stdout.splitlines()))
    except CommandFailed as exc:
        raise BackupError(f"could not run the scratch server for {found.id} on {session.where}: {exc}") from None
    finally:
        target.run(pg.remove_scratch(name), check=False)
        target.run(pg.remove_volume(name), check=False)


def _compare(expected: dict[str, int], actual: dict[str, int]) -> Proof:
    if not expected:
        return Proof(False, "the manifest records no tables to compare")
    missing = sorted(set(expected) - set(actual))
    if missing:
        return Proof(False, f"restored, but table {missing[0]} is missing"
                     + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    wrong = [f"{t}: {actual[t]} rows, {expected[t]} at backup time" for t in sorted(expected)
             if actual[t] != expected[t]]
    if wrong:
        return Proof(False, "restored, but " + "; ".join(wrong[:3]))
    return Proof(True, f"restored into a scratch server: {len(expected)} tables, "
                 f"{sum(expected.values())} rows, as at backup time")


def _scratch_image(session: Session, found: mf.Manifest) -> str:
    """The db image the backup was taken with if still here, else the db service's image running now."""
    candidates = [found.database.get("image", "")]
    running = db_container(session)
    if running is not None:
        candidates.append(running.image)
    for image in candidates:
        if image and session.target.probe(docker.image_inspect(image, "{{.Id}}")).ok:
            return image
    raise BackupError(f"no PostgreSQL image on {session.where} to restore {found.id} into for its check "
                      f"(tried {', '.join(c for c in candidates if c) or 'none'})",
                      hint="start the db service (its image is then here) and verify again")


def db_container(session: Session) -> Container | None:
    """The running container of the backup service, the newest if it runs several."""
    snapshot = session.backend.backup_snapshot()
    running = [c for c in snapshot.of(service_of(session.settings)) if c.running]
    return running[-1] if running else None
