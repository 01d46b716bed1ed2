"""The release history and a sealed backup on disk: appends that a crash cannot merge into one line, a warning
when one cannot be written, and both written through to disk (``sync``) before the toolkit goes on.

Run for real with the scripts the toolkit sends to a host; ``sync`` is the system's own, behind a shim on PATH
that notes what it was asked to write out (a flush to disk cannot be observed otherwise).
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from invoke import Config, Context

from droplet_deploy.commands import backup as backup_cmd
from droplet_deploy.transaction import history
from droplet_deploy.transaction.history import Record
from droplet_deploy.transport.target import LocalTarget


@pytest.fixture
def synced(tmp_path, monkeypatch) -> Path:
    """Where the ``sync`` shim notes its arguments, one call a line."""
    shim, log = tmp_path / "shim", tmp_path / "sync.log"
    shim.mkdir()
    real = subprocess.run(["sh", "-c", "command -v sync"], capture_output=True, text=True, check=True).stdout.strip()
    (shim / "sync").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {real} "$@"\n')
    (shim / "sync").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    return log


def _target(tmp_path, out=None):
    return LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(tmp_path), echo=False,
                       out=out or io.StringIO())


def _entry(revision: str, result: str = "ok") -> Record:
    return Record(revision * 40, f"shop:{revision * 12}", "prod", "me", 1.0, 2.0, result)


def test_a_torn_last_line_never_swallows_the_next_record(tmp_path, synced):
    state = tmp_path / "state"
    state.mkdir()
    good = json.dumps(_entry("a").__dict__)
    # A crash in the middle of an append: the first record whole, the second cut short, no newline.
    (state / "history.jsonl").write_text(good + "\n" + good[:37])
    assert history.record(_target(tmp_path), str(state), _entry("b"))
    lines = history.read((state / "history.jsonl").read_text())
    assert [r.revision[0] for r in lines.records] == ["a", "b"] and lines.unreadable == 1
    assert history.record(_target(tmp_path), str(state), _entry("c"))
    assert [r.revision[0] for r in history.parse((state / "history.jsonl").read_text())] == ["a", "b", "c"]
    assert (state / "history.jsonl").read_text().endswith("\n") and "\n\n" not in (state / "history.jsonl").read_text()
    assert synced.read_text().splitlines() == [f"-- {state}/history.jsonl"] * 2, "each append is written to disk"


def test_a_new_history_is_private_and_a_shared_one_becomes_so(tmp_path):
    state = tmp_path / "state"
    history.record(_target(tmp_path), str(state), _entry("a"))
    assert stat.S_IMODE((state / "history.jsonl").stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    (state / "history.jsonl").chmod(0o644)  # written before the toolkit made it private
    history.record(_target(tmp_path), str(state), _entry("b"))
    assert stat.S_IMODE((state / "history.jsonl").stat().st_mode) == 0o600


def test_a_record_that_cannot_be_written_is_a_warning_naming_it(tmp_path):
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state directory should be\n")
    out = io.StringIO()
    assert not history.record(_target(tmp_path, out), str(blocked), _entry("d", "failed"))
    [line] = out.getvalue().splitlines()
    assert line.startswith(f"warning: the deploy (failed, {'d' * 12}) is not in the release history "
                           f"{blocked}/history.jsonl: ")
    assert line.endswith("`inv deploy.status` will not list it")


def test_a_failed_append_inside_a_change_keeps_the_changes_own_outcome(tmp_path):
    blocked = tmp_path / "state"
    blocked.write_text("")
    out = io.StringIO()
    target = _target(tmp_path, out)
    with pytest.raises(RuntimeError, match="the change's own error"), \
            history.recorded(target, str(blocked), revision="e" * 40, image="i", env="prod", who="me"):
        raise RuntimeError("the change's own error")
    assert "warning: the deploy (failed" in out.getvalue()


def test_a_backup_is_on_disk_before_it_is_sealed_and_its_seal_too(tmp_path, synced):
    base = tmp_path / "backups" / "prod"
    incoming, final = base / ".incoming-20250102T030405Z-abc123def456", base / "20250102T030405Z-abc123def456"
    (incoming / "config").mkdir(parents=True)
    for name in ("database.sqlite3", "manifest.json", "config/.env"):
        (incoming / name).write_text(name)
    assert subprocess.run(backup_cmd.seal(str(incoming), str(final))).returncode == 0
    assert final.is_dir() and not incoming.exists()
    calls = synced.read_text().splitlines()
    flushed_files = {Path(p) for call in calls[:-1] for p in call.split()[1:]}
    assert flushed_files == {incoming / n for n in ("database.sqlite3", "manifest.json", "config/.env")}
    assert calls[-1] == f"-- {final} {base}", "then the rename itself"
    # Sealing onto an id taken already still fails (and flushes nothing under the taken name).
    incoming.mkdir()
    (incoming / "x").write_text("x")
    (final / "keep").write_text("x")
    assert subprocess.run(backup_cmd.seal(str(incoming), str(final)), capture_output=True).returncode != 0
