"""The front proxy's config lock (``<front_dir>/lock``) on a real LocalTarget: two processes that read the routes,
add their own and write the whole config, at once, each wait for the other, so the config ends with both; a live
holder makes a change wait and then fail in one line past the deadline; an abandoned one is taken over."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from invoke import Config, Context

from droplet_deploy.core.errors import FrontError
from droplet_deploy.front import config_lock
from droplet_deploy.transport.target import LocalTarget
from tests.unit.test_lock import dead_pid, plant

REPO = Path(__file__).resolve().parents[2]

# One environment's front step, as publish does it, from its own process: read every route, write its own, build
# and write the whole caddy.json from what it read. The sleep between read and write is where a second writer
# would slip in; each records when it held the lock.
WRITER = """\
import io, json, os, sys, time
from pathlib import Path
from invoke import Config, Context
from droplet_deploy.core import config
from droplet_deploy.front import config_lock, route as routes_mod
from droplet_deploy.front.proxy import FrontProxy
from droplet_deploy.transport.target import LocalTarget

front_dir, project, host, go, log = sys.argv[1:]
root = front_dir + "-" + project
os.makedirs(root, exist_ok=True)
open(os.path.join(root, "Dockerfile"), "w").write("FROM scratch\\n")
open(os.path.join(root, "docker-compose.test.yml"), "w").write("services: {}\\n")
settings = config.load({"app_name": project, "environments": {"test": {
    "project": project, "hosts": [host], "front_dir": front_dir, "public_port": 9000 + len(project)}}},
    root=Path(root))
target = LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), root, out=io.StringIO())
front = FrontProxy(target, settings)
while not os.path.exists(go):
    time.sleep(0.01)
with config_lock.changing(target, front_dir, lambda line: None):
    entered = time.time()
    others = front.routes()
    time.sleep(0.5)
    mine = routes_mod.of(settings, "/etc/droplet-front")
    routes = routes_mod.merged(mine, others)
    front.write_route(mine)
    front.write_config(mine.listeners, routes, set())
    left = time.time()
open(log, "w").write(json.dumps([entered, left]))
"""


def local(path: Path) -> LocalTarget:
    return LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(path), out=io.StringIO())


def test_two_environments_changing_the_front_config_at_once_both_end_in_it(tmp_path):
    front_dir, go = tmp_path / "front", tmp_path / "go"
    front_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(front_dir), project, host, str(go),
                                 str(tmp_path / f"{project}.json")], env=env, stderr=subprocess.PIPE, text=True)
               for project, host in (("shop-test", "shop.example.com"), ("blog-prod", "blog.example.com"))]
    time.sleep(1.0)  # both started and waiting on the same signal
    go.touch()
    for writer in writers:
        _out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
    caddy = (front_dir / "caddy.json").read_text()
    assert "shop.example.com" in caddy and "blog.example.com" in caddy  # neither load lost the other's route
    (a_in, a_out), (b_in, b_out) = sorted(json.loads((tmp_path / f"{p}.json").read_text())
                                          for p in ("shop-test", "blog-prod"))
    assert a_out <= b_in, "the second writer read the routes only after the first had written the config"
    assert not (front_dir / "lock").exists()


def test_a_live_holder_makes_the_change_wait_then_fail_in_one_line(tmp_path):
    front_dir = tmp_path / "front"
    plant(front_dir, pid=os.getpid(), machine=os.uname().nodename, token="ab" * 16)
    started = time.monotonic()
    with pytest.raises(FrontError) as raised:
        with config_lock.changing(local(tmp_path), str(front_dir), lambda line: None, wait=1.0):
            pytest.fail("the block ran while another holder had the lock")
    waited = time.monotonic() - started
    assert 1.0 <= waited < 10
    message = raised.value.message
    assert "\n" not in message and "alice@" in message and str(front_dir / "lock") in message
    assert "within 1s" in message and str(front_dir / "lock") in (raised.value.hint or "")
    assert (front_dir / "lock" / "holder.json").exists()  # the holder's lock is left as it was


def test_the_change_runs_as_soon_as_the_holder_lets_go(tmp_path):
    front_dir = tmp_path / "front"
    plant(front_dir, pid=os.getpid(), machine=os.uname().nodename, token="cd" * 16)
    remover = subprocess.Popen(["sh", "-c", f"sleep 1; rm -rf {front_dir / 'lock'}"])
    try:
        with config_lock.changing(local(tmp_path), str(front_dir), lambda line: None, wait=20):
            holder = json.loads((front_dir / "lock" / "holder.json").read_text())
            assert holder["pid"] == os.getpid() and holder["revision"] == config_lock.PURPOSE
    finally:
        remover.wait()
    assert not (front_dir / "lock").exists()


def test_an_abandoned_lock_is_taken_over_with_a_note_and_released_after_a_failure(tmp_path):
    front_dir = tmp_path / "front"
    plant(front_dir, pid=dead_pid(), machine=os.uname().nodename, token="ef" * 16)
    notes: list[str] = []
    with pytest.raises(RuntimeError):
        with config_lock.changing(local(tmp_path), str(front_dir), notes.append, wait=5):
            assert (front_dir / "lock").exists()
            raise RuntimeError("the load failed")
    assert len(notes) == 1 and "took over the lock" in notes[0] and "process is gone" in notes[0]
    assert not (front_dir / "lock").exists()


def test_a_dry_run_takes_no_lock(tmp_path):
    target = LocalTarget(Context(Config(overrides={"run": {"dry": True, "in_stream": False}})), str(tmp_path),
                         out=io.StringIO())
    with config_lock.changing(target, str(tmp_path / "front"), lambda line: None):
        pass
    assert not (tmp_path / "front").exists()
