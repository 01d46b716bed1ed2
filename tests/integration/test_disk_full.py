"""Disk full on the host during the upload, the unpack and the backup, on the real engine over a real sshd, with
20 requests/s on the public port: each deploy ends with one line, nothing running is harmed, no partial release or
backup is left for a later deploy to trip over, and once there is room the next deploy just works.

The host's disk is a small tmpfs mounted at ``remote_dir`` and another at ``backup_dir`` (filled with a filler
file to the room each case leaves), so this test needs to mount (root, or CAP_SYS_ADMIN, as CI runs it). The image
build itself writes to the engine's own disk, which is shared with everything else on this machine and is not
filled here: the unpack of the release, the last write before the build reads it, stands in for it.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.test_remote import Prod, configure_prod, error_lines
from tests.support import releases
from tests.support.load import Load

pytestmark = pytest.mark.integration


@contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=700", "tmpfs", str(path)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, f"this test mounts a tmpfs (run it as root): {mounted.stderr.strip()}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def free_bytes(path: Path) -> int:
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


@contextmanager
def filled(path: Path, leave: int):
    """Fill the filesystem of ``path`` but ``leave`` bytes."""
    filler = path / "filler"
    with filler.open("wb") as sink:
        sink.write(b"\0" * max(0, free_bytes(path) - leave))
    try:
        yield
    finally:
        filler.unlink()


def leftovers(prod: Prod, backups: Path) -> list[str]:
    found = [p.name for p in (prod.srv / "releases").iterdir() if p.name.startswith(".")]
    env_backups = backups / "prod"
    if env_backups.exists():
        found += [p.name for p in env_backups.iterdir() if p.name.startswith(".")]
    return found


def failed_in_one_line(prod: Prod, served: str, before: set[str], backups: Path) -> str:
    result = prod.deploy(check=False)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    [line] = error_lines(result)
    assert prod.project.health()["revision"] == served, "what served still serves"
    assert set(prod.containers()) == before, "nothing running was touched"
    assert leftovers(prod, backups) == [], "no partial release or backup is left"
    assert not prod.lock.exists()
    return line


def test_a_full_disk_during_upload_unpack_and_backup_fails_in_one_line_and_harms_nothing(project, sshd, tmp_path):
    with tmpfs(tmp_path / "srv", "16m") as srv, tmpfs(tmp_path / "backups", "1m") as backups:
        prod = configure_prod(project, sshd, tmp_path)
        assert prod.srv == srv
        prod.use(min_free_mb=0, backup_before_deploy=True, backup_dir=str(backups))
        prod.deploy()
        served = prod.project.head()
        before = set(prod.containers())
        archive = len(subprocess.run(["git", "archive", "--format=tar.gz", "HEAD"], cwd=project.path,
                                     capture_output=True, check=True).stdout)
        lines = {}
        with Load(project.url + "/api/health", rate=20, max_seconds=900) as load:
            releases.one_line_change(project, "no room for it")
            with filled(srv, leave=archive // 4):
                lines["upload"] = failed_in_one_line(prod, served, before, backups)
            with filled(srv, leave=archive + 256 * 1024):
                lines["unpack"] = failed_in_one_line(prod, served, before, backups)
            with filled(backups, leave=0):
                lines["backup"] = failed_in_one_line(prod, served, before, backups)
            prod.deploy()  # room again: no clean-up by hand
            load.wait(1.5)
            report = load.stop()
        load.kept_pace(report)
        assert report.failed == 0, report.describe()
        assert prod.project.health()["revision"] == prod.project.head()
        assert len(prod.containers()) == 1
        for case, line in lines.items():
            print(f"\ndisk full during {case}: {line}")
        for case in ("upload", "unpack"):
            assert "no space left on the host for the release" in lines[case], lines[case]
        assert "no space left on device" in lines["backup"] and "stopped before changing anything" in lines["backup"]
