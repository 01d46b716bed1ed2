"""Is a backup intact and usable? Every file's sha256 against the manifest, and the database copy opens and
passes ``PRAGMA integrity_check``.

On the host the database check runs in a throwaway container of the app image (the host needs Docker, not
Python); a downloaded copy is checked here with Python's own sqlite3.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from droplet_deploy.backup import manifest as mf
from droplet_deploy.backup import postgres, store
from droplet_deploy.commands import backup as cmd
from droplet_deploy.commands import docker
from droplet_deploy.core.errors import BackupError, BackupInvalid
from droplet_deploy.session import Session


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


Report = Callable[[Check], None]


def verify(session: Session, backup_id: str, report: Report) -> mf.Manifest:
    """Check a backup on the target; BackupInvalid names every damaged file."""
    settings, target = session.settings, session.target
    found = store.read(target, settings, backup_id)
    directory = store.path_of(settings, backup_id)
    sums = mf.parse_sums(target.probe(cmd.checksums(directory, [f.path for f in found.files])).stdout)
    problems = _report_sums(found, mf.compare(found.files, sums), report)
    if found.is_sqlite:
        image = _checker_image(session, found)
        result = target.probe(cmd.check_in_throwaway(image, directory, found.database_file), timeout=600)
        verdict = result.stdout.strip()
        if not result.ok and result.exit_status != 1:
            raise BackupError(f"could not run the database check in {image} on {target.name}: "
                              f"exit {result.exit_status}: {(result.stderr.strip().splitlines() or [''])[-1][:200]}")
        problems += _report_db(found, result.ok and verdict == "ok", verdict, report)
    elif found.database.get("kind") == postgres.KIND:
        if problems:
            report(Check("database", False, f"{found.database_file}: not restored, its checksum does not match"))
        else:
            proof = postgres.prove(session, found)
            report(Check("database", proof.ok, f"{found.database_file}: {proof.detail}"))
            problems += [] if proof.ok else [f"{found.database_file}: {proof.detail}"]
    else:
        report(Check("database", True, f"{found.database_file} made by backup_command: checked by sha256 only"))
    if not target.dry:
        store.record_verdict(target, settings, backup_id, not problems, "; ".join(problems) or "passed")
    if problems:
        raise BackupInvalid(backup_id, problems)
    return found


def verify_local(path: str | Path, report: Report) -> mf.Manifest:
    """Check a backup directory on this machine (a ``--download`` copy)."""
    directory = Path(path).expanduser()
    try:
        found = mf.parse((directory / mf.MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{directory} holds no {mf.MANIFEST}: not a backup, or an unfinished one") from None
    except ValueError as exc:
        raise BackupError(f"{directory}: {exc}") from None
    sums = {}
    for entry in found.files:
        try:
            sums[entry.path] = file_sha256(directory / entry.path)
        except FileNotFoundError:
            pass
    problems = _report_sums(found, mf.compare(found.files, sums), report)
    if found.is_sqlite:
        verdict = integrity(directory / found.database_file)
        problems += _report_db(found, verdict == "ok", verdict, report)
    else:
        report(Check("database", True, f"{found.database_file} made by backup_command: checked by sha256 only"))
    if problems:
        raise BackupInvalid(found.id, problems)
    return found


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def integrity(path: Path) -> str:
    """``ok``, or what SQLite found wrong (also when the file does not open as a database)."""
    if not path.is_file():
        return "missing"
    try:
        con = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro&immutable=1", uri=True)
        try:
            rows = [row[0] for row in con.execute("PRAGMA integrity_check")]
        finally:
            con.close()
    except sqlite3.Error as exc:
        return str(exc)
    return "; ".join(rows)[:300]


def _report_sums(found: mf.Manifest, problems: list[str], report: Report) -> list[str]:
    good = len(found.files) - len(problems)
    report(Check("checksums", not problems, f"{good}/{len(found.files)} files match the manifest"
                 + (f"; {'; '.join(problems)}" if problems else "")))
    return problems


def _report_db(found: mf.Manifest, ok: bool, verdict: str, report: Report) -> list[str]:
    report(Check("database", ok, f"{found.database_file}: integrity_check {verdict or 'gave no answer'}"))
    return [] if ok else [f"{found.database_file}: integrity check failed ({verdict or 'no answer'})"]


def _checker_image(session: Session, found: mf.Manifest) -> str:
    """The backup's own app image if still kept, else the one serving now: both have the app's Python."""
    candidates = [found.image]
    serving = session.backend.snapshot().serving
    if serving is not None:
        candidates.append(serving.image)
    for image in candidates:
        if image and session.target.probe(docker.image_inspect(image, "{{.Id}}")).ok:
            return image
    raise BackupError(f"no app image on {session.where} to check {found.database_file} with "
                      f"(tried {', '.join(c for c in candidates if c)})",
                      hint="deploy first, or `inv backup --download` the backup and verify the local copy")

