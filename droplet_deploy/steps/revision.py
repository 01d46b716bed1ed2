"""The revision to deploy: git HEAD of the local work tree, marked ``-dirty`` when it has changes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from droplet_deploy.commands import git
from droplet_deploy.core.errors import GitError
from droplet_deploy.transport.target import Target

_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Revision:
    sha: str
    dirty: bool = False

    @classmethod
    def of(cls, full: str) -> Revision:
        """The revision an image label or a history line names: ``<sha>`` or ``<sha>-dirty``."""
        return cls(full.removesuffix("-dirty"), full.endswith("-dirty"))

    @property
    def full(self) -> str:
        """What the image label and the running app report."""
        return f"{self.sha}-dirty" if self.dirty else self.sha

    @property
    def tag(self) -> str:
        """The image tag: short enough to read, long enough never to collide in practice."""
        return f"{self.sha[:12]}-dirty" if self.dirty else self.sha[:12]



def parse_head(stdout: str) -> str:
    sha = stdout.strip()
    if not _SHA_RE.match(sha):
        raise GitError(f"git: unexpected HEAD {sha!r}", hint="run inside a git work tree with at least one commit")
    return sha


def current(local: Target, *, allow_dirty: bool = False) -> Revision:
    """Read HEAD and the tree state. A dirty tree is refused unless ``allow_dirty``."""
    result = local.probe(git.head())
    if not result.ok:
        raise GitError(f"git: cannot read HEAD in {local.cwd}",
                       hint="deploy from a git work tree with at least one commit (`git init && git commit`)")
    sha = parse_head(result.stdout)
    changes = [line for line in local.probe(git.status_porcelain(), check=True).stdout.splitlines() if line.strip()]
    if changes and not allow_dirty:
        raise GitError(
            f"work tree has {len(changes)} uncommitted change(s), e.g. {changes[0].strip()!r}",
            hint="commit or stash them, or pass --allow-dirty (the revision will say -dirty)",
        )
    return Revision(sha, dirty=bool(changes))
