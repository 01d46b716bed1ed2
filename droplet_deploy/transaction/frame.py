"""One change to an environment, the same frame for deploy, rollback, restore and start/stop/restart:

    lock (taken first; a heartbeat while held; an abandoned one taken over) ─▶ preparation that is not recorded
    (uploading a release, preflight) ─▶ the change itself, recorded: one history line whatever the outcome (ok,
    failed with the reason, interrupted with the signal) ─▶ unlock ─▶ the summary line, with the time of each step
    ─▶ for a deploy or rollback, the post_deploy hooks with the result (deploy.hooks): after the unlock, so a slow
    notification never holds the lock, and never changing the outcome

Signals (SIGTERM, SIGHUP) arrive as interrupts (``deploy.signals``, installed by the CLI), so the history line
and the unlock happen for them as for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from droplet_deploy.core import signals
from droplet_deploy.session import Session
from droplet_deploy.transaction import history, hooks, lock


class Transaction:
    """``with Transaction(session, "deploy", revision, image) as txn:`` ... ``with txn.recorded():`` ...

    ``summary`` set by the block becomes the last line on success, followed by the elapsed time and the timings
    of the steps named in ``timed``.
    """

    def __init__(self, session: Session, action: str, revision: str, image: str = "", **fields: Any):
        self.session, self.action, self.revision, self.image = session, action, revision, image
        self.fields = fields
        self.summary = ""
        self.suffix = ""  # after the timings: how the revision was proven
        self.timed: list[str] = []
        self.holder: lock.Holder | None = None
        self._lock: contextlib.AbstractContextManager[lock.Holder] | None = None
        self._started = 0.0

    def __enter__(self) -> Transaction:
        self._started = time.monotonic()
        session = self.session
        # An abandoned lock is taken over; the holder names us as changing ``revision``.
        self._lock = lock.held(session.target, session.state_dir, lock.me(self.revision), session.unlock_hint(),
                               stale_after=session.settings.lock_stale_seconds, say=session.ui.note)
        self.holder = self._lock.__enter__()
        return self

    def __exit__(self, *exc_info) -> bool | None:
        assert self._lock is not None
        late = self._settle(failed=exc_info[0] is not None)
        if late is not None:
            exc_info = (type(late), late, late.__traceback__)
        try:
            suppressed = self._lock.__exit__(*exc_info)
            if late is not None and not suppressed:
                raise late
            return suppressed
        finally:
            if exc_info[0] is None and self.summary:
                self.session.ui.line(self.summary_line())
            if self.action in hooks.NOTIFIED and self.session.settings.hooks.post_deploy:
                hooks.post_deploy(self.session, self.facts(exc_info[1]))

    def _settle(self, *, failed: bool) -> BaseException | None:
        """Wait for what went on beside the last steps (the old release's drain) before the lock is released;
        its error, unless the block failed already (that error is the one to report)."""
        try:
            with signals.shielded():
                self.session.settle()
        except BaseException as exc:
            return None if failed else exc
        return None

    def facts(self, error: BaseException | None) -> dict[str, str]:
        """The outcome as post_deploy hooks see it: ok, interrupted (a signal) or failed (with the error line)."""
        if error is None:
            result, reason = "ok", ""
        elif isinstance(error, KeyboardInterrupt):
            result, reason = "interrupted", f"interrupted by {signals.describe(error)}"
        else:
            result, reason = "failed", str(error)
        return hooks.facts(self.session, action=self.action, revision=self.revision, result=result,
                           duration=self.elapsed, reason=reason)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def summary_line(self) -> str:
        breakdown = self.session.ui.breakdown(self.timed) if self.timed else ""
        return f"{self.summary} in {self.elapsed:.1f}s" + (f" ({breakdown})" if breakdown else "") + self.suffix

    @contextlib.contextmanager
    def recorded(self, **fields: Any) -> Iterator[dict]:
        """The recorded part: the yielded dict takes fields learned on the way (a backup id, the proof).
        ``fields`` (``action`` among them) replace the transaction's own for this line: one change under one lock
        may be two lines (a rollback, then the restore of its data)."""
        session = self.session
        line = {"action": self.action, **self.fields, **fields}
        assert self.holder is not None, "recorded() runs inside the transaction's with block"
        with history.recorded(session.target, session.state_dir, revision=self.revision, image=self.image,
                              env=session.settings.env, who=self.holder.holder, **line) as entry:
            yield entry
