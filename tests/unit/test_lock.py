"""The deploy lock on a real LocalTarget in a temporary directory: atomic acquire, takeover of abandoned locks
(holder's process gone, heartbeat stale on the target's clock, no holder), the heartbeat, release, unlock."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from invoke import Config, Context

from droplet_deploy.commands import files
from droplet_deploy.core import config, config_keys
from droplet_deploy.core.errors import LockHeld, LockLost
from droplet_deploy.core.ui import Reporter
from droplet_deploy.operations import unlock as unlock_ops
from droplet_deploy.session import Session
from droplet_deploy.transaction import lock
from droplet_deploy.transport.target import LocalTarget
from tests.conftest import wait_for

BOUND = 120.0


def local(path: Path, *, dry: bool = False, env: dict | None = None) -> LocalTarget:
    run = {"dry": dry, "in_stream": False, **({"env": env} if env else {})}
    return LocalTarget(Context(Config(overrides={"run": run})), str(path), out=io.StringIO())


def dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def plant(state: Path, *, pid: object, machine: str, age: float = 0.0, token: str = "theirs",
          boot_id: str | None = None, pid_ns: str | None = None, started_at: float | None = None) -> Path:
    """A lock as another deploy leaves it; ``age``: seconds since its last heartbeat. A holder named by this host
    name carries this machine's boot id and pid namespace unless told otherwise; a hex token gets its owner mark,
    as this version writes it (other tokens: a lock as an older version left it)."""
    here = lock.this_machine()
    same = machine == here.name
    held = state / "lock"
    held.mkdir(parents=True)
    holder = held / "holder.json"
    holder.write_text(json.dumps({
        "holder": f"alice@{machine}", "pid": pid, "revision": "c0ffee" * 6 + "c0ff",
        "started_at": time.time() - 600 if started_at is None else started_at, "machine": machine, "token": token,
        "boot_id": here.boot_id if boot_id is None and same else boot_id or "",
        "pid_ns": here.pid_ns if pid_ns is None and same else pid_ns or ""}) + "\n")
    if lock.TOKEN.fullmatch(token):
        (held / f"owner.{token}").touch()
    os.utime(holder, (time.time() - age, time.time() - age))
    return held


def acquire(target, state: Path, holder=None, notes=None):
    holder = holder or lock.me("a" * 40)
    lock.acquire(target, str(state), holder, "inv deploy.unlock", stale_after=BOUND,
                 say=(notes.append if notes is not None else print))
    return holder


def current(state: Path) -> dict:
    return json.loads((state / "lock" / "holder.json").read_text())


def test_acquire_writes_the_lock_and_its_holder_in_one_step(tmp_path):
    state = tmp_path / "state"
    holder = acquire(local(tmp_path), state)
    assert current(state)["token"] == holder.token and current(state)["pid"] == os.getpid()
    assert sorted(p.name for p in state.iterdir()) == ["lock"], "no temporary directory is left beside it"


def test_of_many_deploys_starting_at_once_exactly_one_gets_the_lock(tmp_path):
    state = tmp_path / "state"
    won, refused = [], []

    def one():
        try:
            won.append(acquire(local(tmp_path), state).token)
        except LockHeld as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 5, refused
    assert current(state)["token"] == won[0]
    assert all("another deploy is running" in line for line in refused)


def test_a_live_holder_on_this_machine_is_refused_by_name(tmp_path):
    state = tmp_path / "state"
    plant(state, pid=os.getpid(), machine=socket.gethostname(), age=5)
    with pytest.raises(LockHeld) as info:
        acquire(local(tmp_path), state)
    assert f"another deploy is running: alice@{socket.gethostname()} (pid {os.getpid()}" in str(info.value)
    assert "inv deploy.unlock --force" in str(info.value)
    assert current(state)["token"] == "theirs"


def test_a_lock_whose_process_is_gone_is_taken_over_with_a_note(tmp_path):
    state = tmp_path / "state"
    pid = dead_pid()
    plant(state, pid=pid, machine=socket.gethostname())
    notes = []
    holder = acquire(local(tmp_path), state, notes=notes)
    assert notes == [f"took over the lock of alice@{socket.gethostname()} (pid {pid}, revision c0ffeec0ffee, since "
                     f"{notes[0].split('since ')[1].split(')')[0]}), whose process is gone"]
    assert current(state)["token"] == holder.token


def test_a_holder_elsewhere_counts_as_gone_once_its_heartbeat_is_older_than_the_bound(tmp_path):
    state = tmp_path / "state"
    plant(state, pid=1, machine="ci-runner-7", age=BOUND + 60)
    notes = []
    holder = acquire(local(tmp_path), state, notes=notes)
    [note] = notes
    assert note.startswith("took over the lock of alice@ci-runner-7 (pid 1, ")
    assert 175 < stopped_ago(note) < 190 and note.endswith("ago (deploy.lock_stale_seconds: 120)")
    assert current(state)["token"] == holder.token


def test_a_holder_elsewhere_with_a_fresh_heartbeat_is_refused(tmp_path):
    state = tmp_path / "state"
    plant(state, pid=1, machine="ci-runner-7", age=5)
    with pytest.raises(LockHeld) as info:
        acquire(local(tmp_path), state)
    line = str(info.value)
    assert "another deploy is running: alice@ci-runner-7 (pid 1, revision c0ffeec0ffee" in line
    assert re.search(r"last heartbeat [4-9]s ago", line) and "older than 120s (deploy.lock_stale_seconds)" in line
    assert current(state)["token"] == "theirs"


def test_the_heartbeat_age_is_measured_on_the_targets_clock(tmp_path):
    # A host whose clock runs 1000 s ahead of ours, simulated with a `date` first on the target's PATH (we
    # cannot have a second clock here). By our clock the heartbeat is 5 s old; by the target's, 1005 s.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "date").write_text(f"#!/bin/sh\necho $(( $({_real('date')} +%s) + 1000 ))\n")
    (fake / "date").chmod(0o755)
    ahead = local(tmp_path, env={"PATH": f"{fake}:{os.environ['PATH']}"})
    state = tmp_path / "state"
    plant(state, pid=1, machine="ci-runner-7", age=5)
    notes = []
    acquire(ahead, state, notes=notes)
    assert 1000 < stopped_ago(notes[0]) < 1010


def stopped_ago(text: str) -> int:
    """The age in "whose heartbeat stopped 180s ago": mtimes are whole seconds, so it is only known to a second."""
    return int(re.search(r"heartbeat stopped (\d+)s ago", text).group(1))


def _real(name: str) -> str:
    return subprocess.run(["sh", "-c", f"command -v {name}"], capture_output=True, text=True).stdout.strip()


def test_a_lock_without_holder_is_refused_while_young_and_taken_over_when_old(tmp_path):
    state = tmp_path / "state"
    (state / "lock").mkdir(parents=True)  # as an older version left it, killed between mkdir and writing holder.json
    with pytest.raises(LockHeld) as info:
        acquire(local(tmp_path), state)
    assert "a deploy lock exists at" in str(info.value) and "with no readable holder" in str(info.value)
    old = time.time() - BOUND - 30
    os.utime(state / "lock", (old, old))
    notes = []
    holder = acquire(local(tmp_path), state, notes=notes)
    assert notes[0].startswith(f"took over the lock at {state}/lock, which has no readable holder and is 15")
    assert current(state)["token"] == holder.token


def test_held_keeps_the_heartbeat_fresh_and_stops_it_before_releasing(tmp_path):
    state = tmp_path / "state"
    holder_json = state / "lock" / "holder.json"
    with lock.held(local(tmp_path), str(state), lock.me("a" * 40), "inv deploy.unlock", stale_after=4.0,
                   say=print) as holder:
        old = time.time() - 3600
        os.utime(holder_json, (old, old))
        # bounded-time guard: beats come every second with this bound
        assert wait_for(lambda: holder_json.stat().st_mtime > old + 3000, timeout=15)
        assert current(state)["token"] == holder.token
    assert not (state / "lock").exists()
    assert [t for t in threading.enumerate() if t.name == "deploy-lock-heartbeat"] == []


def test_release_leaves_a_lock_that_another_deploy_holds(tmp_path):
    state = tmp_path / "state"
    plant(state, pid=1, machine="ci-runner-7", token="theirs")
    lock.release(local(tmp_path), str(state), lock.me("a" * 40))
    assert current(state)["token"] == "theirs"


def test_remove_if_refuses_a_lock_that_changed_since_it_was_read(tmp_path):
    state = tmp_path / "state"
    plant(state, pid=1, machine="ci-runner-7")
    target = local(tmp_path)
    seen = lock.read_state(target, str(state))
    (state / "lock" / "holder.json").write_text('{"holder": "bob@ci"}\n')
    result = target.run(files.lock_remove_if(str(state / "lock"), seen.text), check=False)
    assert result.exit_status == files.LOCK_HELD and (state / "lock").exists()
    seen = lock.read_state(target, str(state))
    assert target.run(files.lock_remove_if(str(state / "lock"), seen.text), check=False).ok
    assert sorted(p.name for p in state.iterdir()) == []


def test_a_dry_run_takes_no_lock_but_refuses_a_live_one(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    acquire(local(tmp_path, dry=True), state)
    assert not (state / "lock").exists()
    plant(state, pid=os.getpid(), machine=socket.gethostname())
    with pytest.raises(LockHeld):
        acquire(local(tmp_path, dry=True), state)


# --- deploy.unlock ------------------------------------------------------------------------------------------------


@pytest.fixture
def session(root):
    settings = config.load({**config_keys.DEFAULTS, "app_name": "shop"}, "test", root=root)
    target = LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(root), out=io.StringIO())
    return Session(settings, target, target, Reporter(io.StringIO()))


def test_unlock_refuses_a_live_holder_unless_forced(session):
    state = Path(session.state_dir)
    plant(state, pid=os.getpid(), machine=socket.gethostname())
    with pytest.raises(LockHeld) as info:
        unlock_ops.unlock(session)
    assert f"not clearing the deploy lock of alice@{socket.gethostname()} (pid {os.getpid()}" in str(info.value)
    assert str(info.value).endswith("(wait for it to finish; if you are sure it is gone: inv deploy.unlock --force)")
    assert (state / "lock").exists()
    forced = unlock_ops.unlock(session, force=True)
    assert forced.startswith(f"cleared the deploy lock held by alice@{socket.gethostname()}")
    assert forced.endswith(f"(forced; whose process (pid {os.getpid()}) still runs on this machine: stop it first)")
    assert not (state / "lock").exists()


def test_unlock_refuses_a_fresh_heartbeat_and_clears_a_stale_one_with_a_note(session):
    state = Path(session.state_dir)
    plant(state, pid=1, machine="ci-runner-7", age=5)
    with pytest.raises(LockHeld):
        unlock_ops.unlock(session)
    old = time.time() - 600
    os.utime(state / "lock" / "holder.json", (old, old))
    cleared = unlock_ops.unlock(session)
    assert cleared.startswith("cleared the deploy lock held by alice@ci-runner-7 (pid 1")
    assert "(whose heartbeat stopped " in cleared and 595 < stopped_ago(cleared) < 610
    assert unlock_ops.unlock(session) == "no deploy lock on local"


def test_parse_state_reads_the_probe_and_survives_garbage():
    state = lock.parse_state('1000\n900\n990\n{"holder": "a@b", "pid": 1, "revision": "r", "started_at": 1}\n')
    assert (state.present, state.age, state.holder.holder) == (True, 10.0, "a@b")
    assert lock.parse_state("1000\n-\n-\n") == lock.LockState(False)
    assert lock.parse_state("1000\n900\n-\n") == lock.LockState(True, 100.0, "", None)
    assert lock.parse_state("") == lock.LockState(False)
    assert lock.parse_state("garbage\n900\n-\n").age == 0.0, "no readable clock counts as fresh"


# --- who holds it: host name, boot id, pid namespace; a stale heartbeat required too ------------------------------


def test_a_live_holder_on_another_machine_with_the_same_host_name_is_not_taken_over(tmp_path):
    """CI containers share a host name, not a pid namespace: our pid table says nothing about theirs."""
    state = tmp_path / "state"
    here = lock.this_machine()
    plant(state, pid=dead_pid(), machine=here.name, pid_ns="pid:[1]", boot_id=here.boot_id, age=5)
    with pytest.raises(LockHeld, match=r"last heartbeat \d+s ago"):
        acquire(local(tmp_path), state)
    old = time.time() - BOUND - 60
    os.utime(state / "lock" / "holder.json", (old, old))
    notes = []
    acquire(local(tmp_path), state, notes=notes)
    assert "whose heartbeat stopped" in notes[0]


def test_another_boot_of_this_machine_is_another_machine(tmp_path):
    state = tmp_path / "state"
    here = lock.this_machine()
    plant(state, pid=dead_pid(), machine=here.name, boot_id="another-boot", pid_ns=here.pid_ns, age=5)
    with pytest.raises(LockHeld):
        acquire(local(tmp_path), state)


def test_a_pid_that_runs_here_with_a_stale_heartbeat_is_a_reused_pid(tmp_path):
    state = tmp_path / "state"
    plant(state, pid=os.getpid(), machine=socket.gethostname(), age=BOUND + 60)
    notes = []
    acquire(local(tmp_path), state, notes=notes)
    assert f"whose pid {os.getpid()} runs but whose heartbeat stopped" in notes[0]
    assert notes[0].endswith("another process has that pid now")


@pytest.mark.parametrize("pid", [2**40, 0, -1, 4_194_305])
def test_a_pid_that_cannot_be_a_process_counts_as_gone_and_never_crashes(tmp_path, pid):
    state = tmp_path / "state"
    plant(state, pid=pid, machine=socket.gethostname(), age=1)
    notes = []
    holder = acquire(local(tmp_path), state, notes=notes)
    assert notes[0].endswith("whose process is gone")
    assert current(state)["token"] == holder.token
    assert not lock.pid_alive(pid)


# --- the take-over is one rename -----------------------------------------------------------------------------------


def test_of_many_deploys_taking_over_one_abandoned_lock_exactly_one_wins(tmp_path):
    state = tmp_path / "state"
    plant(state, pid=dead_pid(), machine=socket.gethostname(), token="f" * 32)
    won, refused = [], []

    def one():
        try:
            won.append(acquire(local(tmp_path), state).token)
        except LockHeld as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 5, (won, refused)
    assert current(state)["token"] == won[0]
    assert sorted(p.name for p in (state / "lock").iterdir()) == ["holder.json", f"owner.{won[0]}"]


def test_a_take_over_of_a_lock_that_changed_hands_since_it_was_judged_fails(tmp_path):
    state = tmp_path / "state"
    held = plant(state, pid=dead_pid(), machine=socket.gethostname(), token="f" * 32)
    target = local(tmp_path)
    (held / f"owner.{'f' * 32}").rename(held / f"owner.{'e' * 32}")  # someone else took it over first
    result = target.run(files.lock_take_over(str(held), "f" * 32, "a" * 32, "{}"), check=False)
    assert result.exit_status == files.LOCK_HELD
    assert (held / f"owner.{'e' * 32}").exists() and current(state)["token"] == "f" * 32


# --- fenced: a lost lock refuses the next change ------------------------------------------------------------------


def take_it_over(state: Path, token: str = "b" * 32) -> None:
    """Another deploy taking this lock over, as its take-over script does."""
    ours = current(state)["token"]
    (state / "lock" / f"owner.{ours}").rename(state / "lock" / f"owner.{token}")
    data = {**current(state), "token": token, "holder": "bob@ci"}
    (state / "lock" / "holder.json").write_text(json.dumps(data))


def test_a_beat_that_finds_the_lock_taken_over_refuses_every_later_change(tmp_path):
    state = tmp_path / "state"
    target = local(tmp_path)
    with lock.held(target, str(state), lock.me("a" * 40), "inv deploy.unlock", stale_after=4.0, say=print):
        target.run(["touch", "before"])
        take_it_over(state)
        time.sleep(2.5)  # a beat comes every second with this bound
        with pytest.raises(LockLost, match=r"the deploy lock is no longer this deploy's \(it was taken over"):
            target.run(["touch", "after"])
        assert target.probe(["true"]).ok, "reading is still allowed"
    assert (tmp_path / "before").exists() and not (tmp_path / "after").exists()
    assert current(state)["token"] == "b" * 32, "the release leaves the other deploy's lock alone"


class Clock:
    """This machine's wall clock, modelled: a suspend, or a clock set 10 minutes off, cannot be done to the OS
    clock of a shared machine."""

    def __init__(self, offset: float = 0.0):
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


def test_after_a_suspend_the_first_change_asks_the_host_before_it_runs(tmp_path):
    state = tmp_path / "state"
    target = local(tmp_path)
    holder = acquire(target, state)
    clock = Clock()
    beat = lock.Heartbeat(target, str(state / "lock"), holder.token, 15.0, stale_after=BOUND, clock=clock)
    target.before_change = beat.fence  # no beating thread: the laptop was asleep
    clock.offset = 600  # ten minutes of suspend, in which another deploy took the lock over
    take_it_over(state)
    with pytest.raises(LockLost):
        target.run(["touch", "after"])
    assert not (tmp_path / "after").exists()


def test_a_suspend_without_a_take_over_confirms_the_lock_and_goes_on(tmp_path):
    state = tmp_path / "state"
    target = local(tmp_path)
    holder = acquire(target, state)
    clock = Clock()
    beat = lock.Heartbeat(target, str(state / "lock"), holder.token, 15.0, stale_after=BOUND, clock=clock)
    target.before_change = beat.fence
    clock.offset = 600
    target.run(["touch", "after"])
    assert (tmp_path / "after").exists() and beat.confirmed >= time.time() + 590


def test_a_deploy_whose_clock_is_ten_minutes_off_judges_the_lock_on_the_targets_clock(tmp_path):
    """started_at comes from the holder's clock and is only shown; ages come from the target's clock, and the fence
    measures only differences of this machine's clock, so an offset changes nothing either way."""
    state = tmp_path / "state"
    plant(state, pid=1, machine="laptop-ahead", age=5, started_at=time.time() + 600)
    with pytest.raises(LockHeld):
        acquire(local(tmp_path), state)
    old = time.time() - BOUND - 60
    os.utime(state / "lock" / "holder.json", (old, old))
    holder = acquire(local(tmp_path), state, notes=[])
    target = local(tmp_path)
    beat = lock.Heartbeat(target, str(state / "lock"), holder.token, 15.0, stale_after=BOUND, clock=Clock(-600))
    target.before_change = beat.fence
    target.run(["touch", "changed"])
    assert (tmp_path / "changed").exists()
