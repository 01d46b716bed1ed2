"""Where backups live on the target, and reading, pruning and downloading them.

Only sealed backups (a directory named by its id, holding its manifest) are listed, verified, restored or
counted by retention. One being written lives under ``.incoming-<id>``; one left unfinished (a killed run) is
pruned once nothing has touched it for ``UNFINISHED_STALE_MINUTES``: a younger one may be in the middle of
being written by another ``inv backup`` right now.

The backup directory is shared with whoever else keeps files there: only names the toolkit makes
(``<id>`` and ``.incoming-<id>``, ``manifest.own_id``) are ever deleted. Anything else, an operator's pinned copy
(``<id>.keep``) or another tool's dumps, is listed as left alone and never counted, pruned or touched.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from droplet_deploy.backup import manifest as mf
from droplet_deploy.commands import backup as cmd
from droplet_deploy.commands import files
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import BackupError, CommandFailed, UsageError
from droplet_deploy.transport.target import Target

INCOMING = ".incoming-"
UNFINISHED_STALE_MINUTES = 24 * 60


def root(settings: Settings) -> str:
    """``<backup_dir>/<env>``; backup_dir (default ``backups``) is relative to the project root locally and to
    remote_dir on a host, unless absolute."""
    base = settings.host_dir if settings.is_remote else str(settings.root)
    return posixpath.join(base, settings.backup_dir or "backups", settings.env)


def path_of(settings: Settings, backup_id: str) -> str:
    return posixpath.join(root(settings), check_id(backup_id))


def incoming_path(settings: Settings, backup_id: str) -> str:
    """Where a backup is written before it is sealed (a dot-name: never taken for a backup)."""
    return posixpath.join(root(settings), INCOMING + check_id(backup_id))


def check_id(backup_id: str) -> str:
    if not mf.valid_id(backup_id):
        raise UsageError(f"{backup_id!r} is not a backup id",
                         hint="ids look like 20250101T120000Z-abc123def456; see `inv backup.list`")
    return backup_id


@dataclass(frozen=True)
class Listing:
    backups: list[mf.Manifest]  # oldest first
    unreadable: list[str]  # a manifest that does not parse
    unfinished: list[str]  # ours, not sealed (or sealed by an old version without a manifest): interrupted or being written
    others: list[str] = field(default_factory=list)  # not named as the toolkit names its backups: never touched


def is_ours(name: str) -> bool:
    """A directory name the toolkit makes in the backup directory: a sealed id, or one being written."""
    return mf.own_id(name.removeprefix(INCOMING) if name.startswith(INCOMING) else name)


def listing(target: Target, settings: Settings) -> Listing:
    base = root(settings)
    found, unreadable, copies = mf.parse_listing(target.probe(cmd.read_manifests(base)).stdout)
    names = _dir_names(target.probe(cmd.list_dirs(base)).stdout)
    ours = {name for name in names if is_ours(name)}
    listed = {m.id for m in found} | set(unreadable) | set(copies)
    return Listing(sorted(found, key=lambda m: m.id), sorted(unreadable), sorted(ours - listed),
                   sorted((names - ours) | set(copies)))


def _dir_names(stdout: str) -> set[str]:
    return {line.rstrip("/").rsplit("/", 1)[-1] for line in stdout.splitlines() if line.strip()}


def read(target: Target, settings: Settings, backup_id: str) -> mf.Manifest:
    directory = path_of(settings, backup_id)
    text = target.read_text(posixpath.join(directory, mf.MANIFEST))
    if text is None:
        exists = target.probe(["test", "-d", directory]).ok
        if exists:
            raise BackupError(f"backup {backup_id} is unfinished: {directory} has no {mf.MANIFEST}",
                              hint="it was interrupted or is being written; do not restore it")
        raise BackupError(f"no backup {backup_id} in {root(settings)} on {target.name}",
                          hint="see `inv backup.list` for the ones kept")
    try:
        found = mf.parse(text)
    except ValueError as exc:
        raise BackupError(f"backup {backup_id}: {exc}") from None
    if found.id != backup_id:
        raise BackupError(f"backup {backup_id}: its manifest names a different backup ({found.id})")
    return found


def prune(target: Target, settings: Settings, keep: int, protect: tuple[str, ...] = ()) -> list[str]:
    """Delete all but the newest ``keep`` sealed backups, and unfinished ones nothing has touched for
    ``UNFINISHED_STALE_MINUTES``; return the names removed."""
    found = listing(target, settings)
    ids = [m.id for m in found.backups]
    # Whatever keep says, never the last backup known to restore: all newer ones may have failed their check.
    good = mf.newest_verified(ids, verdicts(target, settings))
    doomed = mf.choose_prune(ids, keep, (*protect, *([good] if good else [])))
    for backup_id in doomed:
        target.run(files.remove_tree(path_of(settings, backup_id)))
    stale = stale_unfinished(target, settings, found.unfinished)
    for name in stale:
        target.run(files.remove_tree(posixpath.join(root(settings), name)))
    return doomed + stale


def verdicts(target: Target, settings: Settings) -> dict[str, bool]:
    """Each sealed backup's last check: passed or not (one never checked is absent)."""
    return mf.parse_verdicts(target.probe(cmd.read_verdicts(root(settings))).stdout)


def record_verdict(target: Target, settings: Settings, backup_id: str, ok: bool, detail: str) -> None:
    at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    target.write_text(posixpath.join(path_of(settings, backup_id), mf.VERDICT), mf.verdict_text(ok, detail, at),
                      mode=0o600)


def stale_unfinished(target: Target, settings: Settings, unfinished: list[str]) -> list[str]:
    if not unfinished:
        return []
    aged = target.probe(cmd.list_dirs(root(settings), older_than_minutes=UNFINISHED_STALE_MINUTES))
    return sorted(name for name in _dir_names(aged.stdout) & set(unfinished) if is_ours(name))


def download_dir(dest: str | os.PathLike) -> Path:
    """Where ``--download`` puts backups: an existing directory, or one to create. Checked before the backup is
    made, so a wrong path costs nothing."""
    local = Path(dest).expanduser().resolve()
    if local.exists() and not local.is_dir():
        raise UsageError(f"--download {dest}: {local} is an existing file, not a directory",
                         hint="give a directory to download into (it is created if missing); the file is left as is")
    return local


def download(target: Target, settings: Settings, found: mf.Manifest, dest: str | os.PathLike) -> Path:
    """Copy one backup to ``dest/<id>`` on this machine, readable by this user only (it holds data and the .env)."""
    source = path_of(settings, found.id)
    local = download_dir(dest) / found.id
    if local.exists():
        raise BackupError(f"{local} already exists: not overwritten",
                          hint="download into another directory or move the old copy away first")
    names = [mf.MANIFEST, mf.SUMS, *(f.path for f in found.files)]
    _check_room(found, local)
    local.mkdir(parents=True, mode=0o700)
    os.chmod(local, 0o700)
    try:
        for name in names:
            dest_file = local / name
            dest_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            target.get_file(posixpath.join(source, name), str(dest_file), mode=0o600)
        _check_sizes(found, local)
    except (OSError, CommandFailed, BackupError) as exc:
        shutil.rmtree(local, ignore_errors=True)
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        raise BackupError(f"download of {found.id} from {target.name} failed: {reason}",
                          hint=f"nothing was kept in {local.parent}") from None
    return local


# Room left beside a download: a full disk here breaks more than the download.
DOWNLOAD_MARGIN = 64 * 1024 * 1024


def _check_room(found: mf.Manifest, local: Path) -> None:
    """Refuse, before a byte is written, a download that would leave less than the margin free."""
    existing = next(p for p in (local, *local.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if found.size + DOWNLOAD_MARGIN > free:
        raise BackupError(f"download of {found.id}: it is {_mb(found.size)} and {existing} has {_mb(free)} free "
                          f"(at least {_mb(DOWNLOAD_MARGIN)} must stay free); nothing was written",
                          hint="free some space or download into another directory")


def _check_sizes(found: mf.Manifest, local: Path) -> None:
    """Each downloaded file has the size its manifest gives."""
    for entry in found.files:
        size = (local / entry.path).stat().st_size
        if size != entry.size:
            raise BackupError(f"{entry.path} is {size} bytes, its manifest says {entry.size}")


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"
