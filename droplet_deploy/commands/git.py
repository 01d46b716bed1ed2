"""git commands that give the revision to deploy and the exact tree to ship."""

from __future__ import annotations


def head() -> list[str]:
    return ["git", "rev-parse", "--verify", "HEAD"]


def status_porcelain() -> list[str]:
    # Untracked files count too: a build context can pick them up.
    return ["git", "status", "--porcelain", "--untracked-files=normal"]


def toplevel() -> list[str]:
    return ["git", "rev-parse", "--show-toplevel"]


def commit_files(revision: str) -> list[str]:
    """The files of one commit, NUL-separated: what ``archive`` ships."""
    return ["git", "ls-tree", "-r", "-z", "--name-only", revision]


def work_tree_files() -> list[str]:
    """Tracked files and untracked ones git does not ignore, NUL-separated: what a clean checkout would hold."""
    return ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]


def archive(revision: str, output: str) -> list[str]:
    return ["git", "archive", "--format=tar.gz", "-o", output, revision]
