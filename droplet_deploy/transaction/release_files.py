"""A release's own files, kept in the state dir so a rollback brings back all of it, not only its image:

    <state dir>/releases/<UTC time>-<sha12>/     one per successful deploy, directory mode 700
        compose.yml                              the compose file it ran with
        compose.override.yml                     the toolkit's override it ran with (when it had one)
        env                                      a copy of the env file it ran with, mode 600 (when it had one)
    <state dir>/releases/.incoming-<id>/         being written: filled before the rollout, renamed to <id> once the
                                                 release serves, removed when the rollout fails

A kill in the middle leaves at most an ``.incoming-`` directory, never read and removed by the next deploy (the
deploy lock is held while one is written), so a directory under its final name always holds a release that served.
The history line of the deploy names it (``release``); a rollback hands them to the engine (``Rollback``), which
runs with these files, and the files the compose file names by a relative path still resolve where the original's
did (``--project-directory``).
Everything is copied on the target by commands run there: the env file's values never travel or get printed.
"""

from __future__ import annotations

import contextlib
import posixpath
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from droplet_deploy.commands import files
from droplet_deploy.core import signals
from droplet_deploy.core.errors import DeployError, RolloutFailed
from droplet_deploy.core.release_ids import (
    INCOMING,
    RELEASE_RE,
    parse_leftovers,
    parse_release_names,
    release_name,
    to_prune,
)
from droplet_deploy.session import Session
from droplet_deploy.steps.revision import Revision
from droplet_deploy.transaction.history import Record
from droplet_deploy.transport.target import Target

COMPOSE = "compose.yml"
OVERRIDE = "compose.override.yml"
ENV = "env"


def root(state_dir: str) -> str:
    return posixpath.join(state_dir, "releases")


@dataclass(frozen=True)
class Kept:
    """The files one release ran with, where they are kept."""

    id: str
    path: str
    override: bool
    env: bool

    @property
    def compose_file(self) -> str:
        return posixpath.join(self.path, COMPOSE)

    @property
    def override_file(self) -> str | None:
        return posixpath.join(self.path, OVERRIDE) if self.override else None

    @property
    def env_file(self) -> str | None:
        return posixpath.join(self.path, ENV) if self.env else None

    def describe(self) -> str:
        """``compose file, override and env file kept with release <id>``: what a rollback runs with."""
        parts = ["compose file", *(["override"] if self.override else []), *(["env file"] if self.env else [])]
        listed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
        return f"{listed} kept with release {self.id}"


@dataclass(frozen=True)
class Rollback:
    """What a rollback returns to, handed to the engine's preflight and rollout: the history line of the release
    and the files kept with it (None when none were: deployed before they were kept, or pruned)."""

    record: Record
    files: Kept | None


@dataclass(frozen=True)
class InUse:
    """The files compose runs a release with (the engine says which): what is kept once the release serves."""

    compose_file: str
    override: str | None
    env_file: str | None

    def wanted(self) -> list[tuple[str, str]]:
        """(source, name in the kept directory) of each file there is."""
        return [(self.compose_file, COMPOSE), *([(self.override, OVERRIDE)] if self.override else []),
                *([(self.env_file, ENV)] if self.env_file else [])]


def parse_kept(release_id: str, path: str, listing: str) -> Kept | None:
    """The kept release from a listing of its directory; None without its compose file (nothing to run)."""
    names = {line.strip() for line in listing.splitlines()}
    if COMPOSE not in names:
        return None
    return Kept(release_id, path, OVERRIDE in names, ENV in names)


def read(target: Target, state_dir: str, release_id: str) -> Kept | None:
    """The files kept with ``release_id``; None for a line written before releases were kept, or pruned ones."""
    if not RELEASE_RE.match(release_id):
        return None
    path = posixpath.join(root(state_dir), release_id)
    listed = target.probe(files.list_names(path))
    return parse_kept(release_id, path, listed.stdout) if listed.ok else None


class Keeping:
    """The files of the release being deployed, copied aside before its rollout and kept once it serves."""

    def __init__(self, session: Session, revision: Revision, in_use: InUse):
        self.session = session
        self.in_use = in_use
        self.name = release_name(revision.tag, time.time())
        base = root(session.state_dir)
        self.incoming = posixpath.join(base, INCOMING + self.name)
        self.path = posixpath.join(base, self.name)
        self.id = ""  # set once kept

    def copy(self) -> None:
        target = self.session.target
        try:
            target.run(files.mkdir_p(root(self.session.state_dir)), does="create the directory of kept releases")
            target.run(files.make_private_dir(self.incoming), does=f"keep this release's files aside ({self.name})")
            for source, name in self.in_use.wanted():
                target.run(files.copy_private(source, posixpath.join(self.incoming, name)),
                           does=f"keep a copy of {source} (mode 600)")
        except DeployError as exc:
            self.drop()
            raise RolloutFailed(f"could not keep the release's files in {self.incoming}: {exc}",
                                hint="nothing running was changed; check that the state dir is writable") from None

    def seal(self) -> None:
        """The release serves: keep its files under its id. A failure here is said, never fails the deploy."""
        try:
            self.session.target.run(files.rename(self.incoming, self.path),
                                    does=f"keep this release's files as {self.name}")
        except DeployError as exc:
            self.session.ui.note(f"could not keep this release's files ({exc}); a rollback to it will use the "
                                 "compose and env files of the day")
            self.drop()
            return
        self.id = self.name

    def drop(self) -> None:
        self.session.target.run(files.remove_tree(self.incoming), check=False)


@contextlib.contextmanager
def keeping(session: Session, revision: Revision, in_use: InUse) -> Iterator[Keeping]:
    """``with keeping(session, revision, in_use) as kept: <rollout>`` then ``kept.id`` names the kept files ('' if
    none)."""
    kept = Keeping(session, revision, in_use)
    kept.copy()
    try:
        yield kept
    except BaseException:
        with signals.shielded():
            kept.drop()
        raise
    kept.seal()


def prune(session: Session, keep: int, spare: Iterable[str]) -> list[str]:
    """Remove kept releases past the newest ``keep`` (never one in ``spare``) and leftovers of interrupted deploys."""
    target, base = session.target, root(session.state_dir)
    listed = target.probe(files.list_names(base))
    if not listed.ok:
        return []
    doomed = to_prune(parse_release_names(listed.stdout), keep, spare)
    for name in [*doomed, *parse_leftovers(listed.stdout)]:
        target.run(files.remove_tree(posixpath.join(base, name)), check=False)
    return doomed
