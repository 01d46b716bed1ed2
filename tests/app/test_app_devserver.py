"""The development reload runner, on a copy of the package so the real tree is never touched."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from app_testing import REPO, base_env, free_port, subprocess_env

from app.devserver import changed, snapshot


def _pids(out: Path) -> list[int]:
    entries = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    return [entry["pid"] for entry in entries if entry["msg"] == "service started"]


def _wait(predicate, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_snapshot_and_changed(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("ignored")
    before = snapshot(tmp_path)
    assert list(before) == [str(tmp_path / "a.py")]
    (tmp_path / "b.py").write_text("")
    assert changed(before, snapshot(tmp_path)) == [str(tmp_path / "b.py")]


def test_restarts_the_service_when_code_changes(tmp_path):
    code = tmp_path / "src"
    shutil.copytree(REPO / "app", code / "app", ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    env = subprocess_env(base_env(tmp_path, APP_PORT=str(port), APP_RELOAD_INTERVAL="0.1", APP_DRAIN_SECONDS="1"))
    out = tmp_path / "out.log"
    runner = subprocess.Popen([sys.executable, "-m", "app.devserver"], cwd=code, env=env,  # noqa: S603
                              stdout=out.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait(lambda: _answers(url))
        assert "<code id=\"revision\">" in requests.get(url, timeout=2).text
        first = _pids(out)
        assert len(first) == 1

        page = code / "app" / "routes.py"
        page.write_text(page.read_text().replace("<h1>deploy-demo</h1>", "<h1>deploy-demo reloaded</h1>"))
        _wait(lambda: len(_pids(out)) == 2)
        _wait(lambda: _answers(url) and "reloaded" in requests.get(url, timeout=2).text)
        assert _pids(out)[1] != first[0]
    finally:
        runner.send_signal(signal.SIGTERM)
        try:
            assert runner.wait(15) == 0
        finally:
            if runner.poll() is None:
                runner.kill()
    assert not _answers(url)
    assert not list(code.rglob("__pycache__"))
