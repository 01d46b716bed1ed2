"""Where backups live, when the pipeline takes one, and checking a downloaded copy (real files, real SQLite)."""

import hashlib
import sqlite3
from pathlib import Path

import pytest

from droplet_deploy.backup import manifest as mf
from droplet_deploy.backup.store import check_id, path_of, root
from droplet_deploy.backup.verify import verify_local
from droplet_deploy.core.config import load
from droplet_deploy.core.config_keys import DEFAULTS
from droplet_deploy.core.errors import BackupError, BackupInvalid, ConfigError, UsageError
from droplet_deploy.pipeline.backup_step import wanted


@pytest.fixture
def project(root: Path) -> Path:
    return root


def settings(project, env="test", **overrides):
    raw = {**DEFAULTS, "app_name": "shop", **overrides}
    return load(raw, env, root=project)


def test_backups_live_under_the_project_locally_and_under_remote_dir_on_a_host(project):
    assert root(settings(project)) == f"{project}/backups/test"
    assert root(settings(project, "prod")) == "/srv/shop/backups/prod"
    assert root(settings(project, "prod", remote_dir="/opt/shop")) == "/opt/shop/backups/prod"
    assert root(settings(project, "prod", backup_dir="/var/backups/shop")) == "/var/backups/shop/prod"
    assert root(settings(project, backup_dir="keep")) == f"{project}/keep/test"


def test_an_id_that_is_not_one_never_becomes_a_path(project):
    with pytest.raises(UsageError, match="not a backup id"):
        path_of(settings(project), "../../etc")
    assert check_id("20250102T030405Z-abc123def456") == "20250102T030405Z-abc123def456"


def test_pipeline_backs_up_hosts_by_default_and_the_local_stack_on_request(project):
    from droplet_deploy.engines.compose.backend import ComposeBackend
    from droplet_deploy.engines.compose.ssh import SshComposeBackend

    host, local = SshComposeBackend.backs_up_by_default, ComposeBackend.backs_up_by_default
    assert wanted(settings(project, "prod"), host)
    assert not wanted(settings(project, "test"), local)
    assert wanted(settings(project, "test", backup_before_deploy=True), local)
    assert not wanted(settings(project, "prod", backup_before_deploy=False), host)


def test_backup_keys_are_validated_like_any_other(project):
    with pytest.raises(ConfigError, match="backup_before_deploy: must be a true/false"):
        settings(project, backup_before_deploy="yes")
    with pytest.raises(ConfigError, match="restore_command: must be a list of strings"):
        settings(project, restore_command="pg_restore -d shop")
    with pytest.raises(ConfigError, match="keep_backups"):
        settings(project, keep_backups=0)
    s = settings(project, backup_command=["pg_dump", "shop"], restore_command=["pg_restore", "-d", "shop"])
    assert (s.backup_command, s.restore_command, s.keep_backups) == (["pg_dump", "shop"], ["pg_restore", "-d", "shop"], 7)


def downloaded_backup(directory: Path) -> mf.Manifest:
    """A backup directory as `--download` leaves it, built from real files."""
    directory.mkdir()
    con = sqlite3.connect(directory / mf.SQLITE_FILE)
    con.execute("CREATE TABLE quotes (text TEXT)")
    con.execute("INSERT INTO quotes VALUES ('kept')")
    con.commit()
    con.close()
    (directory / "logs").mkdir()
    (directory / "logs" / "app.log").write_text("started\n")
    names = [mf.SQLITE_FILE, "logs/app.log"]
    found = mf.build(
        backup_id=directory.name if mf.valid_id(directory.name) else "20250102T030405Z-abc123def456", env="prod",
        project="shop", created_at="2025-01-02T03:04:05Z",
        revision="abc123def456", image="shop:abc123def456", tool="t",
        database={"kind": "sqlite", "file": mf.SQLITE_FILE},
        sums={n: hashlib.sha256((directory / n).read_bytes()).hexdigest() for n in names},
        sizes={n: (directory / n).stat().st_size for n in names},
    )
    (directory / mf.MANIFEST).write_text(found.to_json())
    return found


def test_a_downloaded_copy_verifies_locally(tmp_path):
    built = downloaded_backup(tmp_path / "b")
    seen = []
    assert verify_local(tmp_path / "b", seen.append) == built
    assert [(c.name, c.ok) for c in seen] == [("checksums", True), ("database", True)]


def test_a_flipped_byte_fails_verification_naming_the_file(tmp_path):
    downloaded_backup(tmp_path / "b")
    db = tmp_path / "b" / mf.SQLITE_FILE
    data = bytearray(db.read_bytes())
    data[len(data) // 2] ^= 0x01
    db.write_bytes(bytes(data))
    with pytest.raises(BackupInvalid, match="database.sqlite3: checksum mismatch") as caught:
        verify_local(tmp_path / "b", lambda check: None)
    assert caught.value.backup_id == "20250102T030405Z-abc123def456"


def test_a_missing_file_and_a_broken_database_are_both_named(tmp_path):
    downloaded_backup(tmp_path / "b")
    (tmp_path / "b" / "logs" / "app.log").unlink()
    (tmp_path / "b" / mf.SQLITE_FILE).write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupInvalid) as caught:
        verify_local(tmp_path / "b", lambda check: None)
    assert caught.value.problems == ["database.sqlite3: checksum mismatch", "logs/app.log: missing",
                                     "database.sqlite3: integrity check failed (file is not a database)"]


def test_a_directory_without_manifest_is_not_a_backup(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(BackupError, match="no manifest.json"):
        verify_local(tmp_path / "half", lambda check: None)


def test_only_sealed_backups_are_listed_and_unfinished_ones_are_pruned_once_stale(project):
    """Real directories, real `find` through a LocalTarget: what `backup.list` and retention see."""
    import io
    import os
    import time

    from invoke import Config, Context

    from droplet_deploy.backup.store import UNFINISHED_STALE_MINUTES, listing, prune
    from droplet_deploy.transport.target import LocalTarget

    s = settings(project)
    base = Path(root(s))
    base.mkdir(parents=True)
    sealed = downloaded_backup(base / "20250102T030405Z-abc123def456")
    old_incoming = base / ".incoming-20250103T000000Z-abc123def456"
    fresh_incoming = base / ".incoming-20250104T000000Z-abc123def456"
    legacy = base / "20000101T000000Z-unfinished"  # an old version's unfinished backup: no manifest
    for directory in (old_incoming, fresh_incoming, legacy):
        directory.mkdir()
        (directory / mf.SQLITE_FILE).write_text("half")
    stale = time.time() - (UNFINISHED_STALE_MINUTES + 5) * 60
    for directory in (old_incoming, legacy):
        os.utime(directory, (stale, stale))

    target = LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(project), out=io.StringIO())
    found = listing(target, s)
    assert [m.id for m in found.backups] == [sealed.id]
    assert found.unfinished == sorted([old_incoming.name, fresh_incoming.name, legacy.name])

    removed = prune(target, s, keep=5)
    assert removed == sorted([old_incoming.name, legacy.name])
    assert sorted(p.name for p in base.iterdir()) == sorted([sealed.id, fresh_incoming.name]), \
        "a young unfinished backup may be one being written right now: kept"


def test_retention_deletes_only_what_the_toolkit_named_however_old_the_rest(project):
    """An operator's pinned copy (``<id>.keep``, manifest and all), another tool's dump folder and stray
    ``.incoming-`` names outlive every prune; they are listed as left alone and never counted as backups."""
    import io
    import os
    import shutil
    import time

    from invoke import Config, Context

    from droplet_deploy.backup.store import UNFINISHED_STALE_MINUTES, listing, prune
    from droplet_deploy.transport.target import LocalTarget

    s = settings(project)
    base = Path(root(s))
    base.mkdir(parents=True)
    ids = [f"2025010{n}T000000Z-abc123def456" for n in range(1, 5)]
    for backup_id in ids:
        downloaded_backup(base / backup_id)
    pinned = base / f"{ids[0]}.keep"
    shutil.copytree(base / ids[0], pinned)
    theirs = [pinned, base / "pg_dumps_from_cron", base / ".incoming-by-hand", base / "20250101T000000Z-a.b"]
    for directory in theirs[1:]:
        directory.mkdir()
        (directory / "dump.sql").write_text("theirs")
    stale = time.time() - (UNFINISHED_STALE_MINUTES + 60) * 60
    for directory in theirs:
        os.utime(directory, (stale, stale))

    target = LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(project), out=io.StringIO())
    found = listing(target, s)
    assert [m.id for m in found.backups] == ids
    assert found.unfinished == []
    assert found.others == sorted(p.name for p in theirs)

    for _ in range(3):
        prune(target, s, keep=1)
    assert sorted(p.name for p in base.iterdir()) == sorted([ids[-1], *(p.name for p in theirs)])
    assert (pinned / mf.MANIFEST).is_file() and (base / "pg_dumps_from_cron" / "dump.sql").read_text() == "theirs"
