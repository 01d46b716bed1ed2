"""What the toolkit leaves on a host is its user's alone: deployed over a real sshd (tests/support/sshd.py) to the
real engine, twice, with a backup before the second deploy, every file it wrote under ``remote_dir`` is neither
group- nor world-readable and its directories are the owner's only. The release's own files (the repository's
tree, unpacked for the build) keep the modes git gives them: the image copies them, and the app's user must read
them.
"""

from __future__ import annotations

import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from tests.integration.test_remote import (
    SECRET,
    commit_change,
    prod,  # noqa: F401 - fixture: a clone configured for prod on a real sshd
)

pytestmark = pytest.mark.integration


class _LockWatcher(threading.Thread):
    """Records the modes of the lock directory and its holder.json while a deploy holds them."""

    def __init__(self, lock: Path):
        super().__init__(daemon=True)
        self.lock, self.seen, self.done = lock, {}, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.01):
            for path in (self.lock, self.lock / "holder.json"):
                try:
                    self.seen[path.name] = stat.S_IMODE(os.stat(path).st_mode)
                except FileNotFoundError:
                    pass


def _tracked(project_path: Path, revision: str) -> set[str]:
    listed = subprocess.run(["git", "ls-tree", "-r", "-t", "--name-only", revision], cwd=project_path,
                            capture_output=True, text=True, check=True).stdout
    return set(listed.split())


def test_every_file_the_toolkit_writes_on_the_host_is_private(prod, tmp_path):  # noqa: F811
    project = prod.project
    prod.use(backup_before_deploy=True, keep_backups=3)
    first = project.head()
    prod.deploy()
    second = commit_change(project, "second")
    watcher = _LockWatcher(prod.lock)
    watcher.start()
    try:
        result = prod.deploy()
    finally:
        watcher.done.set()
        watcher.join()
    assert "backup" in result.stdout and SECRET not in result.stdout + result.stderr
    download = tmp_path / "downloaded"
    project.inv("backup", "--host", "prod", "--download", str(download))

    assert watcher.seen.get("lock") == 0o700 and watcher.seen.get("holder.json") == 0o600, watcher.seen
    state = prod.srv / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert (state / "history.jsonl").exists() and list((prod.srv / "backups").rglob("manifest.json"))

    repository = _tracked(project.path, first) | _tracked(project.path, second)
    releases = prod.srv / "releases"
    exposed, checked = [], 0
    for path in sorted(prod.srv.rglob("*")):
        relative = path.relative_to(prod.srv)
        if relative.parts[0] == "releases" and len(relative.parts) > 2 and \
                "/".join(relative.parts[2:]) in repository:
            continue  # the repository's own tree
        if relative.parts[0] == "shared" or path == releases or path.parent == releases:
            continue  # shared/ and its env file are the operator's (made by the test); a release's directory
            # holds the repository's tree
        mode = stat.S_IMODE(path.lstat().st_mode)
        checked += 1
        if path.is_symlink():
            continue
        if mode & 0o077:
            exposed.append(f"{relative} {mode:o}")
    assert checked > 10, "history, kept release files, the backup and its manifest were all looked at"
    assert exposed == [], "readable by others: " + ", ".join(exposed)
    for path in download.rglob("*"):
        assert not stat.S_IMODE(path.stat().st_mode) & 0o077, f"downloaded {path} is readable by others"
