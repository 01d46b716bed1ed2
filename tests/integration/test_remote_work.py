"""Remote work stops with the deploy, on a real sshd (the host is this machine, so its /proc shows what runs).

A channel without a terminal sends the host no signal when it closes: an interrupted deploy's migration or compose
up kept running. Every command of a deploy carries its lock token (``files.RUN_TAG``); an interrupted command is
stopped on the host before the lock is released, and a deploy that takes over an abandoned lock first stops what
that deploy still runs there. No Docker needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from invoke import Config, Context

from droplet_deploy.commands import files
from droplet_deploy.core import signals
from droplet_deploy.host.connect import connect
from droplet_deploy.transaction import lock
from tests.integration.test_link import settings_for

pytestmark = pytest.mark.integration


def tagged(tag: str) -> list[int]:
    """The processes of this machine whose environment carries ``tag``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"{files.RUN_TAG}={tag}".encode() in environ:
            found.append(int(entry.name))
    return found


def test_an_interrupted_command_is_stopped_on_the_host_with_all_it_started(sshd, tmp_path):
    target = connect(Context(Config()), settings_for(tmp_path, sshd.ssh_config, sshd.known_hosts))
    target.tag = uuid.uuid4().hex
    try:
        # A "migration" that starts a child of its own, as `compose run` and `sh -c` hooks do.
        seen: list[int] = []
        asked: list[float] = []

        def interrupt() -> None:
            seen.extend(tagged(target.tag))
            asked.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Timer(1.5, interrupt).start()
        with signals.handled(), pytest.raises(KeyboardInterrupt):
            target.run(["sh", "-c", "sleep 300 & sleep 301; wait"])
        returned = time.monotonic()
        assert len(seen) >= 3, f"the command and both children carry the mark: {seen}"
        assert not tagged(target.tag), "nothing of it runs once the interrupt has returned"
        print(f"interrupt to return, remote command stopped: {returned - asked[0]:.2f}s")
    finally:
        target.close()


def test_taking_over_an_abandoned_lock_first_stops_what_that_deploy_still_runs(sshd, tmp_path):
    gone_token = uuid.uuid4().hex
    state = tmp_path / "state"
    held = state / "lock"
    held.mkdir(parents=True)
    (held / "holder.json").write_text(json.dumps({
        "holder": "ci@runner", "pid": 1, "revision": "c" * 40, "started_at": time.time() - 900,
        "machine": "runner-that-vanished", "token": gone_token}) + "\n")
    (held / f"owner.{gone_token}").touch()
    old = time.time() - 600
    os.utime(held / "holder.json", (old, old))
    # What the vanished deploy's migration left running on the host.
    migration = subprocess.Popen(["sleep", "300"], env={**os.environ, files.RUN_TAG: gone_token})
    reaper = threading.Thread(target=migration.wait, daemon=True)  # its parent on a host reaps it, as here
    reaper.start()
    target = connect(Context(Config()), settings_for(tmp_path, sshd.ssh_config, sshd.known_hosts))
    notes: list[str] = []
    try:
        started = time.monotonic()
        lock.acquire(target, str(state), lock.me("a" * 40), "inv deploy.unlock", stale_after=120, say=notes.append)
        print(f"take-over with the abandoned deploy's process stopped: {time.monotonic() - started:.2f}s")
        reaper.join(timeout=15)
        assert migration.returncode == -signal.SIGTERM
        assert notes[0].startswith("took over the lock of ci@runner")
        assert notes[1] == f"stopped 1 process(es) the abandoned deploy left running on {target.name}"
    finally:
        migration.kill()
        target.close()
