"""git commands that give the revision to deploy and the exact tree to ship."""

from __future__ import annotations


def head() -> list[str]:
    return ["git", "rev-parse", "--verify", "HEAD"]


def status_porcelain() -> list[str]:
    # Untracked files count too: a build context can pick them up.
    return ["git", "status", "--porcelain", "--untracked-files=normal"]


def toplevel() -> list[str]:
    return ["git", "rev-parse", "--show-toplevel"]


def archive(revision: str, output: str) -> list[str]:
    return ["git", "archive", "--format=tar.gz", "-o", output, revision]
