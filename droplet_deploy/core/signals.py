"""SIGTERM and SIGHUP handled like Ctrl-C: a CI job cancel or a closed terminal ends a deploy the way Ctrl-C does.

``handled()`` turns SIGINT, SIGTERM and SIGHUP into ``Interrupted`` (a ``KeyboardInterrupt``) in the main thread,
so the ``finally`` blocks of the lock, the history line and the rollout's undo run for every one of them.
``shielded()`` marks a clean-up that must not stop halfway: a signal arriving inside it is held back and raised
once it is done (or dropped, when the block is already on its way out with an exception).

Invoke's local runner catches a ``KeyboardInterrupt`` raised while it waits for a command and only forwards it to
the command's stdin, which a non-interactive command ignores; ``raise_if_swallowed`` re-raises it once the
command returns, so an interrupt is never lost.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Sent by this process to its own main thread to hand it an error found in another thread (raise_in_main).
WAKE = signal.SIGUSR1


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by ``signum``; exits with 128 + signum like a shell does."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    def __init__(self) -> None:
        self.raised = 0  # how many interrupts the handler raised: lets a caller see one it never received
        self.last: int = signal.SIGINT
        self.shield_depth = 0
        self.held_back: int | None = None
        self.pending: BaseException | None = None  # an error another thread handed to the main thread


_state = _State()


def describe(exc: BaseException) -> str:
    """``Ctrl-C`` for SIGINT (and a plain KeyboardInterrupt), else the signal's name."""
    signum = getattr(exc, "signum", signal.SIGINT)
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def exit_code(exc: BaseException) -> int:
    return 128 + getattr(exc, "signum", signal.SIGINT)


def _handler(signum: int, frame: FrameType | None) -> None:
    if _state.shield_depth:
        _state.held_back = signum
        return
    _state.raised += 1
    _state.last = signum
    raise Interrupted(signum)


def _wake(signum: int, frame: FrameType | None) -> None:
    if _state.pending is not None and not _state.shield_depth:
        error, _state.pending = _state.pending, None
        raise error


def raise_in_main(error: BaseException) -> None:
    """From a background thread: raise ``error`` in the main thread at once, also out of a blocking wait (a
    health poll, a sleep), as a signal would; inside a ``shielded`` clean-up it waits for the clean-up's end.
    Where the handlers are not installed, the main thread meets the error at its next command instead."""
    _state.pending = error
    main = threading.main_thread().ident
    if signal.getsignal(WAKE) is _wake and main is not None:
        signal.pthread_kill(main, WAKE)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Install the handlers for the block (main thread only; elsewhere Python allows no handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _handler if signum != WAKE else _wake) for signum in (*HANDLED, WAKE)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Run a clean-up to its end: signals that arrive meanwhile are held back, then raised if nothing else is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.shield_depth += 1
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        _state.shield_depth -= 1
        if not _state.shield_depth and _state.pending is not None and not failed:
            error, _state.pending = _state.pending, None
            raise error
        if not _state.shield_depth and _state.held_back is not None:
            signum, _state.held_back = _state.held_back, None
            if not failed:
                _state.raised += 1
                _state.last = signum
                raise Interrupted(signum)


def mark() -> int:
    """A marker to pass to ``raise_if_swallowed`` after a command that may swallow an interrupt."""
    return _state.raised


def raise_if_swallowed(marker: int) -> None:
    """Re-raise an interrupt raised since ``marker`` that never reached us (outside any shield, main thread)."""
    if (_state.raised != marker and not _state.shield_depth
            and threading.current_thread() is threading.main_thread()):
        raise Interrupted(_state.last)
