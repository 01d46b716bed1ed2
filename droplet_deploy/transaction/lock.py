"""One deploy at a time per target: a lock directory that names its holder and carries a heartbeat.

    acquire   holder.json is written into a fresh directory that is then renamed to ``<state_dir>/lock``: the
              lock and its holder appear in one atomic step, and a second deploy's rename fails
    held      a background thread refreshes the heartbeat (holder.json's mtime) while the block runs
    release   the lock naming our token is renamed away and removed; the heartbeat stops first

A lock is abandoned (stale) when its holder ran on this machine and that process is gone, or ran elsewhere (a CI
runner that vanished) and its heartbeat is older than ``deploy.lock_stale_seconds``, or it has no readable holder
and is older than that. Ages are measured on the target's clock, never this machine's against the target's. The
next deploy takes a stale lock over with a note (one rename of its owner mark: ``files.lock_take_over``); a live
one is refused with its holder's name.

"This machine" is the host name *and* the boot id *and* the pid namespace: CI containers often share a host name
but not their processes, and a pid seen from another namespace says nothing. A holder whose pid runs here but whose
heartbeat is stale is abandoned too (the pid was reused); a pid that cannot be a process (0, -1, 2**40) is gone.

Fenced: while the lock is held, ``Heartbeat.fence`` is asked before every change on the target. It refuses
(``LockLost``) once a beat found the lock is no longer ours, and asks the host itself when the last confirmed beat
is overdue (this machine was suspended, the beats failed), so a deploy that resumes after another took its lock
over changes nothing more.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from droplet_deploy.commands import files
from droplet_deploy.core import signals
from droplet_deploy.core.errors import CommandFailed, LockHeld, LockLost
from droplet_deploy.transport.target import Target

STALE_SETTING = "deploy.lock_stale_seconds"
# The largest pid Linux hands out (pid_max's ceiling); anything outside 1..PID_MAX is no process at all.
PID_MAX = 4_194_304
TOKEN = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Holder:
    holder: str
    pid: int
    revision: str
    started_at: float
    machine: str
    token: str = ""  # unique per deploy: the heartbeat and the release touch only the lock that names it
    boot_id: str = ""  # with machine and pid_ns: which running system the pid belongs to ("" where unknown)
    pid_ns: str = ""

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return f"{self.holder} (pid {self.pid}, revision {self.revision[:12]}, since {started})"


@dataclass(frozen=True)
class LockState:
    """The lock as one probe saw it. ``age``: seconds since its heartbeat (else its creation), target's clock."""

    present: bool
    age: float = 0.0
    text: str = ""
    holder: Holder | None = None


@dataclass(frozen=True)
class Staleness:
    stale: bool
    why: str  # completes "the lock of <holder>, ..." either way


@dataclass(frozen=True)
class Machine:
    """Where a pid means something: host name, boot id (a reboot starts a new one) and pid namespace."""

    name: str
    boot_id: str
    pid_ns: str

    def ran(self, holder: Holder) -> bool:
        return (holder.machine, holder.boot_id, holder.pid_ns) == (self.name, self.boot_id, self.pid_ns)


def _read(read: Callable[[], str]) -> str:
    try:
        return read().strip()
    except OSError:
        return ""  # not Linux: the host name is all there is, as before


def this_machine() -> Machine:
    return Machine(socket.gethostname(), _read(lambda: open("/proc/sys/kernel/random/boot_id").read()),
                   _read(lambda: os.readlink("/proc/self/ns/pid")))


def me(revision: str) -> Holder:
    here = this_machine()
    return Holder(f"{getpass.getuser()}@{here.name}", os.getpid(), revision, time.time(), here.name,
                  uuid.uuid4().hex, here.boot_id, here.pid_ns)


def parse_holder(text: str | None) -> Holder | None:
    try:
        data = json.loads(text or "")
        return Holder(str(data["holder"]), int(data["pid"]), str(data["revision"]), float(data["started_at"]),
                      str(data.get("machine", "")), str(data.get("token", "")), str(data.get("boot_id", "")),
                      str(data.get("pid_ns", "")))
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
        return None


def parse_state(stdout: str) -> LockState:
    """The output of ``files.lock_state``: now, the lock's mtime, holder.json's mtime ("-": none), holder.json."""
    now, made, beat, *rest = (stdout.split("\n", 3) + ["", "", ""])[:4]
    if made.strip() in ("-", ""):
        return LockState(False)
    text = rest[0] if rest else ""
    latest = beat.strip() if beat.strip() != "-" else made.strip()
    try:
        age = max(0.0, float(now) - float(latest))
    except ValueError:
        age = 0.0  # no readable clock: count it as fresh rather than take over a lock that may be live
    return LockState(True, age, text, parse_holder(text))


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs here; 0 and -1 would name a process group and every process, 2**40 overflows."""
    if not 1 <= pid <= PID_MAX:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def judge(state: LockState, stale_after: float, *, here: Machine | None = None,
          alive: Callable[[int], bool] = pid_alive) -> Staleness:
    """Whether a present lock is abandoned. Pure but for ``alive`` (is that pid running on this machine)."""
    holder = state.holder
    age = f"{state.age:.0f}s"
    if holder is None:
        return Staleness(state.age > stale_after, f"which has no readable holder and is {age} old")
    if (here or this_machine()).ran(holder):
        if not alive(holder.pid):
            return Staleness(True, "whose process is gone")
        if state.age > stale_after:
            return Staleness(True, f"whose pid {holder.pid} runs but whose heartbeat stopped {age} ago "
                                   f"({STALE_SETTING}: {stale_after:g}): another process has that pid now")
        return Staleness(False, f"whose process (pid {holder.pid}) still runs on this machine")
    if state.age > stale_after:
        return Staleness(True, f"whose heartbeat stopped {age} ago ({STALE_SETTING}: {stale_after:g})")
    return Staleness(False, f"whose last heartbeat was {age} ago")


def heartbeat_every(stale_after: float) -> float:
    """Several beats fit in the bound, so a missed one or two never make a live deploy look abandoned."""
    return max(1.0, min(stale_after / 4, 15.0))


def lock_dir(state_dir: str) -> str:
    return f"{state_dir.rstrip('/')}/lock"


def read_state(target: Target, state_dir: str) -> LockState:
    return parse_state(target.probe(files.lock_state(lock_dir(state_dir)), check=True).stdout)


def whose(state: LockState, path: str) -> str:
    return f"of {state.holder.describe()}" if state.holder else f"at {path}"


def acquire(target: Target, state_dir: str, holder: Holder, unlock_hint: str, *, stale_after: float,
            say: Callable[[str], None]) -> None:
    """Take the lock, or take over an abandoned one (with a note), or raise ``LockHeld`` naming the live holder.

    Under ``--dry`` nothing is taken, but a live lock still refuses, as the real run would.
    """
    path = lock_dir(state_dir)
    text = json.dumps(asdict(holder))
    target.run(files.mkdir_p(state_dir), does=f"create the state directory {state_dir}")
    if target.dry:
        state = read_state(target, state_dir)
        if state.present:
            verdict = judge(state, stale_after)
            if not verdict.stale:
                raise refusal(target, path, state, verdict, unlock_hint, stale_after)
            say(f"would take over the lock {whose(state, path)}, {verdict.why}")
        target.run(files.lock_acquire(path, text, holder.token), does=f"take the deploy lock on {target.name}")
        return
    for attempt in range(3):
        result = target.run(files.lock_acquire(path, text, holder.token), check=False,
                            does=f"take the deploy lock on {target.name}")
        if result.ok:
            return
        if result.exit_status != files.LOCK_HELD:
            raise CommandFailed(result.argv, result.exit_status, result.stderr, where=target.name)
        state = read_state(target, state_dir)
        if not state.present:
            continue  # released between our attempt and the look: try again
        verdict = judge(state, stale_after)
        if not verdict.stale or attempt == 2:
            raise refusal(target, path, state, verdict, unlock_hint, stale_after)
        if take_over(target, path, state, holder, text):
            say(f"took over the lock {whose(state, path)}, {verdict.why}")
            stop_left_running(target, state.holder, say)
            return
    raise LockHeld(f"[{target.name}] the deploy lock at {path} kept changing while this deploy tried to take it",
                   hint="another deploy is starting at the same moment; try again")


def take_over(target: Target, path: str, state: LockState, holder: Holder, text: str) -> bool:
    """Make the abandoned lock ours; False when it changed hands since it was judged (a deploy that took it over
    first keeps it). A lock with an owner mark changes hands in one rename; one without (an older toolkit's, or no
    readable holder) is removed if unchanged, and then taken by the next attempt."""
    old = state.holder.token if state.holder else ""
    if TOKEN.fullmatch(old):
        return target.run(files.lock_take_over(path, old, holder.token, text), check=False,
                          does="take over the abandoned deploy lock").ok
    if not target.run(files.lock_remove_if(path, state.text), check=False,
                      does="remove the abandoned deploy lock").ok:
        return False
    return target.run(files.lock_acquire(path, text, holder.token), check=False,
                      does=f"take the deploy lock on {target.name}").ok


def stop_left_running(target: Target, gone: Holder | None, say: Callable[[str], None]) -> None:
    """Stop what the abandoned deploy's commands still run on the target (a migration, a compose up: they carry
    its token, ``files.RUN_TAG``), so this deploy never runs beside them."""
    if gone is None or not TOKEN.fullmatch(gone.token):
        return
    result = target.run(files.stop_tagged(gone.token), check=False,
                        does="stop what the abandoned deploy left running")
    count = result.stdout.strip()
    if result.ok and count.isdigit() and int(count):
        say(f"stopped {count} process(es) the abandoned deploy left running on {target.name}")


def refusal(target: Target, path: str, state: LockState, verdict: Staleness, unlock_hint: str,
            stale_after: float) -> LockHeld:
    """Why a live lock cannot be had: who holds it, and when it would count as abandoned."""
    if state.holder is None:
        return LockHeld(f"[{target.name}] a deploy lock exists at {path} with no readable holder, "
                        f"{state.age:.0f}s old",
                        hint=f"it counts as abandoned after {stale_after:g}s ({STALE_SETTING}); "
                             f"if no deploy is running: {unlock_hint} --force")
    elsewhere = not this_machine().ran(state.holder)
    beat = f", last heartbeat {state.age:.0f}s ago" if elsewhere else ""
    later = (f"; it counts as abandoned once its heartbeat is older than {stale_after:g}s ({STALE_SETTING})"
             if elsewhere else "")
    return LockHeld(f"[{target.name}] another deploy is running: {state.holder.describe()}{beat}",
                    hint=f"wait for it to finish{later}; if you are sure it is gone: {unlock_hint} --force")


class Heartbeat:
    """Refreshes the lock's heartbeat from a background thread until stopped, and fences the changes.

    Over SSH the beats share the deploy's connection (paramiko multiplexes channels). Each beat only touches a
    lock that still carries our owner mark, and ``stop`` waits for the beat in flight, so nothing is written after
    the lock is released. A beat that finds the mark gone makes ``fence`` refuse every later change; so does a lock
    whose beats could not be confirmed for ``stale_after`` seconds (it may have been taken over meanwhile).
    """

    def __init__(self, target: Target, path: str, token: str, every: float, *, stale_after: float | None = None,
                 clock: Callable[[], float] = time.time):
        self.target, self.path, self.token, self.every = target, path, token, every
        self.stale_after = stale_after if stale_after is not None else every * 4
        # The wall clock, not the monotonic one: a suspended laptop's monotonic clock stands still.
        self.clock = clock
        self.confirmed = clock()
        self.lost = ""  # why the lock is no longer ours; "" while it is
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deploy-lock-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.beat()

    def beat(self) -> None:
        try:
            result = self.target.probe(files.lock_heartbeat(self.path, self.token), timeout=self.every)
        except Exception:  # noqa: BLE001 - a missed beat is retried; the bound allows several
            return
        if result.ok:
            self.confirmed = self.clock()
        elif result.exit_status == files.LOCK_HELD:
            self.lost = "it was taken over or removed meanwhile"

    def fence(self) -> None:
        """Before a change: refuse it with ``LockLost`` unless the lock is still ours."""
        if not self.lost and self.clock() - self.confirmed > 2 * self.every:
            self.beat()  # overdue (a suspend, failing beats): ask the host now rather than trust the last beat
            unconfirmed = self.clock() - self.confirmed
            if not self.lost and unconfirmed > self.stale_after:
                self.lost = f"its heartbeat went unconfirmed for {unconfirmed:.0f}s, past {STALE_SETTING}"
        if self.lost:
            raise LockLost(self.target.name, self.lost)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def release(target: Target, state_dir: str, holder: Holder) -> None:
    target.run(files.lock_release(lock_dir(state_dir), holder.token), check=False,
               does=f"release the deploy lock on {target.name}")


@contextlib.contextmanager
def held(target: Target, state_dir: str, holder: Holder, unlock_hint: str, *, stale_after: float,
         say: Callable[[str], None]) -> Iterator[Holder]:
    """Hold the lock for the block; released on success, failure, Ctrl-C, SIGTERM and SIGHUP alike."""
    acquire(target, state_dir, holder, unlock_hint, stale_after=stale_after, say=say)
    beat = None if target.dry else Heartbeat(target, lock_dir(state_dir), holder.token,
                                             heartbeat_every(stale_after), stale_after=stale_after).start()
    if beat is not None:
        target.before_change = beat.fence
    target.tag = holder.token
    try:
        yield holder
    finally:
        with signals.shielded():
            target.before_change = None
            target.tag = ""
            if beat is not None:
                beat.stop()
            release(target, state_dir, holder)
