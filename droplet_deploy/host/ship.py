"""Ship exactly the revision to the host, as a release directory, with no git access on the server.

    <remote_dir>/
      releases/<UTC timestamp>-<sha12>/   the tree of one commit (``git archive``), where build and compose run
      releases/.incoming-<name>/          a release being uploaded and unpacked; renamed to <name> when complete
      shared/.env                         the host's secrets: compose reads them by absolute path (APP_ENV_FILE),
                                          so they are never in a release, i.e. never in the build context
      state/                              lock and history

A release directory under its final name is always complete: nothing builds from a half-unpacked tree. The
newest ``keep_releases`` releases stay, and so does any release a container of the stack was created from
(compose records it), so the one serving is never removed. An ``.incoming-`` directory is never in use (the
deploy lock is held while a release is prepared), so one found later is the leftover of an interrupted deploy
and is removed.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from droplet_deploy.commands import files, git
from droplet_deploy.commands import release_dirs as cmd
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import CommandFailed, DiskFull, GitError, PreflightFailed
from droplet_deploy.core.release_ids import (
    INCOMING,
    parse_leftovers,
    parse_release_names,
    release_name,
    to_prune,
)
from droplet_deploy.session import Session
from droplet_deploy.steps.preflight import Item
from droplet_deploy.steps.revision import Revision
from droplet_deploy.transaction import retention as releases
from droplet_deploy.transport.target import Target

UPLOAD_NAME = ".upload.tar.gz"


# --- pure -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What compose recorded about the stack's containers: the directory each was created from."""

    working_dir: str
    state: str
    service: str


def parse_usage(stdout: str) -> list[Usage]:
    found = []
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0]:
            found.append(Usage(*parts))
    return found


def releases_in_use(usages: Sequence[Usage], releases_dir: str) -> set[str]:
    prefix = releases_dir.rstrip("/") + "/"
    return {u.working_dir[len(prefix):].split("/", 1)[0] for u in usages if u.working_dir.startswith(prefix)}


def serving_release(usages: Sequence[Usage], releases_dir: str, app_service: str) -> str | None:
    """The newest release a running app container came from (the proxy may still run from an older one)."""
    running = [u for u in usages if u.state == "running" and u.service == app_service]
    names = releases_in_use(running, releases_dir)
    return max(names) if names else None


def judge_env_file(path: str, exit_ok: bool, mode_text: str) -> Item:
    """Only its permission bits are read: the values never leave the host."""
    if not exit_ok:
        return Item("env file", False, f"{path} is missing on the host: create it from .env.example with the "
                                       f"production secrets, then `chmod 600 {path}`")
    try:
        mode = int(mode_text.strip(), 8)
    except ValueError:
        return Item("env file", False, f"cannot read the permissions of {path}")
    if mode & 0o077:
        return Item("env file", False, f"{path} is readable by others (mode {mode:o}): `chmod 600 {path}`")
    return Item("env file", True, f"{path} present (mode {mode:o}, values not shown)")


# --- on the host ----------------------------------------------------------------------------------------


def releases_dir(settings: Settings) -> str:
    return posixpath.join(settings.host_dir, "releases")


def list_releases(target: Target, settings: Settings) -> list[str]:
    result = target.probe(files.list_names(releases_dir(settings)))
    return parse_release_names(result.stdout) if result.ok else []


def usage(target: Target, settings: Settings) -> list[Usage]:
    result = target.probe(cmd.working_dirs(settings.project))
    return parse_usage(result.stdout) if result.ok else []


def current_release_dir(target: Target, settings: Settings) -> str:
    """Where compose commands about the running stack work: the serving release, else the newest one."""
    base = releases_dir(settings)
    name = serving_release(usage(target, settings), base, settings.app_service)
    if name is None:
        names = list_releases(target, settings)
        name = names[-1] if names else None
    if name is not None:
        return posixpath.join(base, name)
    root = settings.host_dir
    return root if target.probe(files.is_dir(root)).ok else "/"


def env_file_check(target: Target, path: str) -> Item:
    """The env file at ``path`` on the host: there, and readable by its owner only (its values never read)."""
    result = target.probe(files.file_mode(path))
    return judge_env_file(path, result.ok, result.stdout)


def prepare_release(session: Session, revision: Revision) -> None:
    """Upload ``revision`` into a new release directory and make it the target's working directory."""
    settings, target, ui = session.settings, session.target, session.ui
    env = env_file_check(target, settings.env_file_path) if settings.env_file_path else None
    if env is not None and not env.ok:
        raise PreflightFailed(f"preflight: env file: {env.detail}", hint="nothing was uploaded or changed")

    base = releases_dir(settings)
    name = release_name(revision.tag, time.time())
    release = posixpath.join(base, name)
    incoming = posixpath.join(base, INCOMING + name)
    upload = posixpath.join(incoming, UPLOAD_NAME)
    if revision.dirty:
        what = f"the work tree as it is ({len(_work_tree_files(session))} files, --allow-dirty)"
    else:
        what = f"git archive of {revision.sha[:12]} ({len(_commit_files(session, revision))} files)"
    ui.note(f"{'would upload' if target.dry else 'uploading'} {what} to {target.name}:{release}")

    with tempfile.TemporaryDirectory(prefix="deploy-release-") as tmp:
        archive = os.path.join(tmp, f"{name}.tar.gz")
        if not revision.dirty:
            session.local.run(git.archive(revision.sha, archive))  # under --dry: printed only
        elif not target.dry:
            _tar_work_tree(session, archive)
        target.run(files.mkdir_p(base, posixpath.join(settings.host_dir, "shared")))
        _remove_leftovers(session)
        target.run(cmd.make_release_dir(incoming))
        try:
            _upload(target, archive, upload)
            target.run(cmd.unpack(upload, incoming))
            target.run(files.remove_file(upload))
            target.run(files.rename(incoming, release))  # complete: only now does it carry a release name
        except BaseException as exc:
            target.run(files.remove_tree(incoming), check=False)  # a half-unpacked release must never be built
            if isinstance(exc, CommandFailed) and DiskFull.said_by(exc.stderr):
                raise DiskFull(target.name, f"the release {name}", releases_dir(settings)) from None
            raise
    if target.dry:
        # Nothing was uploaded: the build and compose commands that follow are planned in the release serving now.
        in_service = target.cwd.startswith(base + "/")
        ui.note(f"planning the rest in the release in service: {target.cwd}" if in_service
                else "no release on the host yet: planning a first deploy")
    else:
        target.cwd = release
        ui.note(f"release {name} ready")
    _prune(session, name)


def _upload(target: Target, archive: str, remote: str) -> None:
    try:
        target.put_file(archive, remote, mode=0o600)
    except OSError as exc:  # the archive could not be read here
        raise CommandFailed(["upload", archive, remote], -1, exc.strerror or str(exc), where=target.name) from None


def _remove_leftovers(session: Session) -> None:
    """Releases an interrupted deploy left half-made. Never in use: the deploy lock is held while preparing one."""
    target, base = session.target, releases_dir(session.settings)
    listed = target.probe(files.list_names(base))
    leftovers = parse_leftovers(listed.stdout) if listed.ok else []
    for name in leftovers:
        target.run(files.remove_tree(posixpath.join(base, name)), check=False)
    if leftovers:
        session.ui.note(f"{'would remove' if target.dry else 'removed'} {len(leftovers)} unfinished release(s) "
                        "left by an interrupted deploy")


def newest_of(names: Iterable[str], revisions: Iterable[str]) -> set[str]:
    """The newest release directory of each revision (what a rollback to it would run from)."""
    ordered = sorted(names)
    found = set()
    for revision in revisions:
        tag = Revision.of(revision).tag
        shipped = [name for name in ordered if name.endswith("-" + tag)]
        if shipped:
            found.add(shipped[-1])
    return found


def _prune(session: Session, new: str) -> None:
    target, settings = session.target, session.settings
    names = {*list_releases(target, settings), new}
    in_use = releases_in_use(usage(target, settings), releases_dir(settings)) | {new}
    # Never the directory of the release a rollback would go back to.
    spared = in_use | newest_of(names, releases.needed_now(session).revisions)
    doomed = to_prune(names, settings.keep_releases, spared)
    for name in doomed:
        target.run(files.remove_tree(posixpath.join(releases_dir(settings), name)), check=False)
    if doomed:
        session.ui.note(f"kept the newest {settings.keep_releases} release(s) and those in use, "
                        f"{'would remove' if target.dry else 'removed'} {len(doomed)}")


def _commit_files(session: Session, revision: Revision) -> list[str]:
    result = session.local.probe(git.commit_files(revision.sha), check=True)
    return [f for f in result.stdout.split("\0") if f]


def _work_tree_files(session: Session) -> list[str]:
    """Tracked and untracked-but-not-ignored files: what the build would see in a clean checkout of this tree."""
    result = session.local.probe(git.work_tree_files(), check=True)
    root = session.settings.root
    return sorted({f for f in result.stdout.split("\0") if f and os.path.lexists(root / f)})


def _tar_work_tree(session: Session, archive: str) -> None:
    files = _work_tree_files(session)
    if not files:
        raise GitError("the work tree has no files to ship", hint="commit the project first")
    root = session.settings.root
    with tarfile.open(archive, "w:gz") as tar:
        for rel in files:
            tar.add(root / rel, arcname=rel, recursive=False)


def shipped_directory(session: Session, revision: str) -> str:
    """The release directory that shipped ``revision`` while it is still kept, so the compose and config files
    match the image; otherwise the one in service, and say so."""
    tag = Revision.of(revision).tag
    shipped = newest_of(list_releases(session.target, session.settings), [revision])
    if shipped:
        name = shipped.pop()
        session.ui.note(f"using release directory {name}")
        return posixpath.join(releases_dir(session.settings), name)
    session.ui.note(f"the release directory of {tag} was pruned: using the compose files in {session.target.cwd}")
    return session.target.cwd
