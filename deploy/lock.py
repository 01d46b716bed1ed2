"""One deploy at a time per target: an atomic ``mkdir`` lock that names its holder (as Kamal does)."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from .commands import files
from .errors import LockHeld
from .target import Target


@dataclass(frozen=True)
class Holder:
    holder: str
    pid: int
    revision: str
    started_at: float
    machine: str

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return f"{self.holder} (pid {self.pid}, revision {self.revision[:12]}, since {started})"


def me(revision: str) -> Holder:
    machine = socket.gethostname()
    return Holder(f"{getpass.getuser()}@{machine}", os.getpid(), revision, time.time(), machine)


def parse_holder(text: str | None) -> Holder | None:
    try:
        data = json.loads(text or "")
        return Holder(str(data["holder"]), int(data["pid"]), str(data["revision"]), float(data["started_at"]),
                      str(data.get("machine", "")))
    except (ValueError, KeyError, TypeError):
        return None


def holder_alive(holder: Holder) -> bool | None:
    """Whether the holder's process still exists: None when it ran on another machine and we cannot tell."""
    if holder.machine != socket.gethostname():
        return None
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def holder_gone(holder: Holder) -> bool:
    """True only when we can tell: the holder ran on this machine and its process no longer exists."""
    return holder_alive(holder) is False


def lock_dir(state_dir: str) -> str:
    return f"{state_dir.rstrip('/')}/lock"


def read_holder(target: Target, state_dir: str) -> Holder | None:
    return parse_holder(target.read_text(f"{lock_dir(state_dir)}/holder.json"))


def acquire(target: Target, state_dir: str, holder: Holder, unlock_hint: str) -> None:
    target.run(files.mkdir_p(state_dir))
    result = target.run(files.mkdir_exclusive(lock_dir(state_dir)), check=False)
    if not result.ok:
        raise refusal(target, state_dir, unlock_hint)
    target.write_text(f"{lock_dir(state_dir)}/holder.json", json.dumps(asdict(holder)) + "\n")


def refusal(target: Target, state_dir: str, unlock_hint: str) -> LockHeld:
    """Why the lock cannot be had: who holds it, or that its holder is gone and how to clear it."""
    current = read_holder(target, state_dir)
    if current is None:
        return LockHeld(f"[{target.name}] a deploy lock exists at {lock_dir(state_dir)} with no readable holder",
                        hint=f"if no deploy is running: {unlock_hint}")
    if holder_gone(current):
        return LockHeld(f"[{target.name}] stale deploy lock: held by {current.describe()}, a process that is gone",
                        hint=f"clear it with: {unlock_hint}")
    return LockHeld(f"[{target.name}] another deploy is running: {current.describe()}",
                    hint=f"wait for it to finish; if it died, clear the lock with: {unlock_hint}")


def refuse_if_held(target: Target, state_dir: str, unlock_hint: str) -> None:
    """A read-only early check (it also runs under --dry); ``acquire`` stays the atomic guard."""
    if target.probe(["test", "-d", lock_dir(state_dir)]).ok:
        raise refusal(target, state_dir, unlock_hint)


def release(target: Target, state_dir: str) -> None:
    target.run(files.remove_tree(lock_dir(state_dir)), check=False)


@contextlib.contextmanager
def held(target: Target, state_dir: str, holder: Holder, unlock_hint: str) -> Iterator[None]:
    """Hold the lock for the block; released on success, failure and Ctrl-C alike."""
    acquire(target, state_dir, holder, unlock_hint)
    try:
        yield
    finally:
        release(target, state_dir)
