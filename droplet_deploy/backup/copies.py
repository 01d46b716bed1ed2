"""Copies of each backup off its host (``backup_copy``): a backup on the droplet dies with the droplet.

    sealed, verified backup on the host ─▶ this machine (a private temporary directory, through the connection
        already open) ─▶ each place in backup_copy ─▶ the temporary directory removed

Two kinds of place:
- ``ssh://<host>/<dir>``: another host through its own SSH connection (the environment's ssh_config and
  known_hosts, strict host keys); the copy is written as ``<dir>/<env>/.incoming-<id>`` and renamed to ``<id>``
  when whole, as on the backup's own host;
- ``s3://<bucket>/<prefix>``: an S3-compatible bucket (AWS S3, DigitalOcean Spaces, MinIO) through boto3, the
  ``droplet-deploy[s3]`` extra; objects ``<prefix>/<env>/<id>/<file>``, the manifest last, so a copy with a
  manifest is whole. The endpoint and credentials come from boto3's own settings (``AWS_ENDPOINT_URL``,
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` or ``~/.aws``), never from the toolkit's config.

Bringing a copy back (``backup.restore ID --from PLACE``) is the same way round: into the temporary directory,
checked there (``verify_local``), then onto the host as a sealed backup, which the restore then uses.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from invoke import Context

from droplet_deploy.backup import manifest as mf
from droplet_deploy.backup import store
from droplet_deploy.backup.verify import verify_local
from droplet_deploy.commands import backup as cmd
from droplet_deploy.commands import files
from droplet_deploy.core.errors import BackupError, CommandFailed, DeployError, UsageError
from droplet_deploy.session import Session
from droplet_deploy.transport.target import Target


@dataclass(frozen=True)
class Place:
    kind: str  # "ssh" or "s3"
    where: str  # the host spec, or the bucket
    path: str  # the directory on the host, or the key prefix (no leading or trailing '/')
    text: str  # as configured

    @classmethod
    def parse(cls, text: str) -> Place:
        scheme, sep, rest = text.partition("://")
        where, _, path = rest.partition("/")
        if not sep or scheme not in ("ssh", "s3") or not where:
            raise UsageError(f"backup_copy {text!r} is not a place to copy to",
                             hint="write ssh://<host>/<absolute dir> or s3://<bucket>/<prefix>")
        if scheme == "ssh" and not path.strip("/"):
            raise UsageError(f"backup_copy {text!r} names no directory on {where}",
                             hint="write ssh://<host>/<absolute dir>, e.g. ssh://backup@vault/srv/backups")
        return cls(scheme, where, ("/" + path.strip("/")) if scheme == "ssh" else path.strip("/"), text)


def places(session: Session) -> list[Place]:
    return [Place.parse(text) for text in session.settings.backup_copy or []]


def send(session: Session, found: mf.Manifest) -> list[str]:
    """Copy ``found`` to every place; the places it reached. A place that fails is said, not raised: the backup
    itself is whole on its host."""
    done: list[str] = []
    targets = places(session)
    if not targets:
        return done
    with staged(session, found) as local:
        for place in targets:
            try:
                with session.ui.step("copy", f"{found.id} to {place.text}"):
                    _put(session, place, local, found)
                done.append(place.text)
            except (DeployError, OSError) as exc:
                session.ui.note(f"copy to {place.text} FAILED: {getattr(exc, 'message', None) or exc}")
    return done


@contextlib.contextmanager
def staged(session: Session, found: mf.Manifest) -> Iterator[Path]:
    """The backup in a private temporary directory on this machine for the block (removed after)."""
    tmp = Path(tempfile.mkdtemp(prefix="droplet-backup-"))
    try:
        os.chmod(tmp, 0o700)
        yield store.download(session.target, session.settings, found, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def listed(session: Session) -> dict[str, list[str]]:
    """Each place and the ids of the whole copies there."""
    found: dict[str, list[str]] = {}
    for place in places(session):
        try:
            found[place.text] = sorted(_ids(session, place))
        except (DeployError, OSError) as exc:
            session.ui.note(f"could not list {place.text}: {getattr(exc, 'message', None) or exc}")
    return found


def bring_back(session: Session, place_text: str, backup_id: str) -> None:
    """Put the copy of ``backup_id`` at ``place_text`` onto the host as a sealed backup (checked on the way)."""
    store.check_id(backup_id)
    known = {p.text: p for p in places(session)}
    place = known.get(place_text) or next((p for p in known.values() if p.where == place_text), None)
    if place is None:
        raise UsageError(f"--from {place_text!r} is not one of backup_copy's places",
                         hint=f"use one of: {', '.join(known) or 'none configured'}")
    settings, target = session.settings, session.target
    if target.probe(["test", "-e", store.path_of(settings, backup_id)]).ok:
        session.ui.note(f"{backup_id} is on {session.where} already: the copy at {place.text} is not needed")
        return
    tmp = Path(tempfile.mkdtemp(prefix="droplet-backup-"))
    try:
        os.chmod(tmp, 0o700)
        local = tmp / backup_id
        with session.ui.step("fetch", f"{backup_id} from {place.text}"):
            _get(session, place, backup_id, local)
            verify_local(local, lambda check: session.ui.note(f"{check.name}: {check.detail}"))
        _upload_sealed(target, store.incoming_path(settings, backup_id), store.path_of(settings, backup_id), local,
                       store.root(settings))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- one place ------------------------------------------------------------------------------------------------

def _names(found: mf.Manifest) -> list[str]:
    """Every file of a backup, the manifest last (its arrival makes the copy whole)."""
    return [*(f.path for f in found.files), mf.SUMS, mf.MANIFEST]


def _put(session: Session, place: Place, local: Path, found: mf.Manifest) -> None:
    env = session.settings.env
    if place.kind == "s3":
        client, bucket = _s3(place)
        for name in _names(found):
            client.upload_file(str(local / name), bucket, _key(place, env, found.id, name))
        return
    with _host(session, place) as host:
        base = posixpath.join(place.path, env)
        _upload_sealed(host, posixpath.join(base, ".incoming-" + found.id), posixpath.join(base, found.id), local,
                       base)


def _upload_sealed(target: Target, incoming: str, final: str, local: Path, base: str) -> None:
    """``local`` (a whole backup) onto ``target`` under ``incoming``, then renamed to ``final``."""
    target.run(files.mkdir_p(base))
    target.run(cmd.claim_dir(incoming, final))
    try:
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            rel = path.relative_to(local).as_posix()
            if "/" in rel:
                target.run(cmd.make_subdirs(incoming, [posixpath.dirname(rel)]))
            target.put_file(str(path), posixpath.join(incoming, rel), mode=0o600)
        target.run(cmd.seal(incoming, final))
    except BaseException:
        target.run(files.remove_tree(incoming), check=False)
        raise


def _ids(session: Session, place: Place) -> set[str]:
    env = session.settings.env
    if place.kind == "s3":
        client, bucket = _s3(place)
        prefix = _key(place, env, "", "")
        ids = set()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                backup_id, _, name = item["Key"][len(prefix):].partition("/")
                if name == mf.MANIFEST and mf.own_id(backup_id):
                    ids.add(backup_id)
        return ids
    with _host(session, place) as host:
        found, _, _ = mf.parse_listing(host.probe(cmd.read_manifests(posixpath.join(place.path, env))).stdout)
        return {m.id for m in found}


def _get(session: Session, place: Place, backup_id: str, local: Path) -> None:
    env = session.settings.env
    local.mkdir(mode=0o700)
    if place.kind == "s3":
        client, bucket = _s3(place)
        manifest = local / mf.MANIFEST
        try:
            client.download_file(bucket, _key(place, env, backup_id, mf.MANIFEST), str(manifest))
        except Exception as exc:  # botocore's errors: a missing key is a ClientError
            raise BackupError(f"no copy of {backup_id} at {place.text}: {exc}",
                              hint="see `inv backup.list` for the copies there") from None
        found = _parsed(manifest)
        for name in _names(found)[:-1]:
            dest = local / name
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            client.download_file(bucket, _key(place, env, backup_id, name), str(dest))
            os.chmod(dest, 0o600)
        os.chmod(manifest, 0o600)
        return
    with _host(session, place) as host:
        source = posixpath.join(place.path, env, backup_id)
        try:
            host.get_file(posixpath.join(source, mf.MANIFEST), str(local / mf.MANIFEST))
        except (CommandFailed, OSError):
            raise BackupError(f"no copy of {backup_id} at {place.text}",
                              hint="see `inv backup.list` for the copies there") from None
        for name in _names(_parsed(local / mf.MANIFEST))[:-1]:
            dest = local / name
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            host.get_file(posixpath.join(source, name), str(dest))


def _parsed(path: Path) -> mf.Manifest:
    try:
        return mf.parse(path.read_text())
    except ValueError as exc:
        raise BackupError(f"the copy's {mf.MANIFEST} is not valid: {exc}") from None


def _key(place: Place, env: str, backup_id: str, name: str) -> str:
    parts = [p for p in (place.path, env, backup_id) if p]
    return "/".join(parts) + "/" + name


def _s3(place: Place):
    try:
        import boto3  # type: ignore[import-untyped]  # noqa: PLC0415 - the optional extra, only for a bucket
    except ImportError:
        raise BackupError(f"backup_copy {place.text} needs boto3",
                          hint="pip install 'droplet-deploy[s3]'") from None
    return boto3.client("s3"), place.where


@contextlib.contextmanager
def _host(session: Session, place: Place) -> Iterator[Target]:
    """A connection of its own to the copy's host, with the environment's ssh_config and known_hosts."""
    from droplet_deploy.host.connect import connect  # noqa: PLC0415 - fabric loads only for a copy to a host

    host = connect(Context(), session.settings.replace(host=place.where), say=session.ui.note)
    try:
        yield host
    finally:
        host.close()
