"""One change of the front proxy's config at a time per host: any checkout of any project reads the route files,
changes its own and loads the whole config, and two of those at once would each load a config without the other's
change. The lock is ``<front_dir>/lock``, made, held and released by the deploy lock's machinery
(``transaction/lock.py``): taken in one atomic step, naming its holder, a heartbeat while held, taken over once
abandoned. It is held only for the read, change and load of the routes (seconds), so a second environment's
deploy waits for it, up to a deadline, rather than being refused."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from droplet_deploy.core import signals
from droplet_deploy.core.errors import FrontError, LockHeld
from droplet_deploy.transaction import lock
from droplet_deploy.transport.target import Target

# Longer than the longest change it covers: the front proxy's first start (proxy.START_TIMEOUT) and a load.
WAIT = 120.0
# A holder elsewhere (a deploy over SSH from another machine) that stops beating this long is gone; its beats
# come every few seconds (lock.heartbeat_every), so a live one is never taken for abandoned.
STALE_AFTER = 60.0
POLL = 0.2
PURPOSE = "front"  # the holder's "revision": what it holds the lock for


def path(front_dir: str) -> str:
    return lock.lock_dir(front_dir)


@contextlib.contextmanager
def changing(target: Target, front_dir: str, say: Callable[[str], None], *, wait: float = WAIT,
             stale_after: float = STALE_AFTER, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> Iterator[None]:
    """Hold the front's config lock for the block; wait up to ``wait`` seconds for another holder to finish."""
    if target.dry:
        yield  # nothing changes, so nothing to keep apart
        return
    holder = lock.me(PURPOSE)
    _take(target, front_dir, holder, say, wait=wait, stale_after=stale_after, clock=clock, sleep=sleep)
    beat = lock.Heartbeat(target, path(front_dir), holder.token, lock.heartbeat_every(stale_after),
                          stale_after=stale_after).start()
    try:
        yield
    finally:
        with signals.shielded():
            beat.stop()
            lock.release(target, front_dir, holder)


def _take(target: Target, front_dir: str, holder: lock.Holder, say: Callable[[str], None], *, wait: float,
          stale_after: float, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
    deadline = clock() + wait
    hint = f"rm -rf {path(front_dir)}"
    while True:
        try:
            lock.acquire(target, front_dir, holder, hint, stale_after=stale_after, say=say)
            return
        except LockHeld:
            if clock() >= deadline:
                state = lock.read_state(target, front_dir)
                who = f" by {state.holder.holder} (pid {state.holder.pid})" if state.holder else ""
                raise FrontError(f"[{target.name}] the front proxy's config is being changed{who} and was not free "
                                 f"within {wait:g}s ({path(front_dir)})",
                                 hint=f"try again once that deploy is done; if none runs on {target.name}: "
                                      f"{hint}") from None
            sleep(POLL)
