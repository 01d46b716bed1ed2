"""`backup --download` writes nothing it cannot finish: room for the whole backup (and a margin) first, and every
file the size its manifest gives, else nothing is kept. Real files through the real LocalTarget; only the free
space of the disk is modelled (filling a real disk on a shared machine would harm others), and said so."""

from __future__ import annotations

import io
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
from invoke import Config, Context

from droplet_deploy.backup import manifest as mf
from droplet_deploy.backup import store
from droplet_deploy.core.errors import BackupError
from droplet_deploy.transport.target import LocalTarget

from .test_backup_policy import downloaded_backup, settings

Usage = namedtuple("Usage", "total used free")


def _stored(project: Path):
    s = settings(project)
    base = Path(store.root(s))
    base.mkdir(parents=True)
    found = downloaded_backup(base / "20250102T030405Z-abc123def456")
    (base / found.id / mf.SUMS).write_text(mf.sums_text(found))
    target = LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(project), out=io.StringIO())
    return s, found, target


def test_a_download_fits_the_space_it_has_or_writes_nothing(root, tmp_path, monkeypatch):
    s, found, target = _stored(root)
    dest = tmp_path / "downloads" / "nested"
    # Modelled: the disk has less free than the backup plus the margin.
    real = shutil.disk_usage
    monkeypatch.setattr(store.shutil, "disk_usage",
                        lambda path: Usage(10**9, 10**9, found.size + store.DOWNLOAD_MARGIN - 1))
    with pytest.raises(BackupError) as info:
        store.download(target, s, found, dest)
    assert str(info.value).startswith(f"download of {found.id}: it is ")
    assert "nothing was written" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "downloads").exists()
    monkeypatch.setattr(store.shutil, "disk_usage", real)
    local = store.download(target, s, found, dest)
    assert (local / "logs" / "app.log").read_text() == "started\n"


def test_a_file_other_than_its_manifest_says_keeps_nothing(root, tmp_path):
    s, found, target = _stored(root)
    grown = Path(store.path_of(s, found.id)) / "logs" / "app.log"
    grown.write_text("started\n" + "x" * 5000)
    with pytest.raises(BackupError) as info:
        store.download(target, s, found, tmp_path / "d")
    assert "logs/app.log is 5008 bytes, its manifest says 8" in str(info.value)
    assert list((tmp_path / "d").iterdir()) == [], "nothing was kept"
