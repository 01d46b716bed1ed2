"""What the user sees: step headers, each step's duration, check lines, a live line while a build runs on a
terminal, and one summary line.

Colour and the live line only reach a terminal: piped into a file or a CI log the output is plain text, the same
lines. ``NO_COLOR`` (https://no-color.org) turns colour off; ``TERM=dumb`` turns both off.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

_RESET = "\x1b[0m"
_STYLES = {"step": "\x1b[1m", "pass": "\x1b[32m", "fail": "\x1b[31m", "warn": "\x1b[33m", "dim": "\x1b[2m"}
# A build's own progress lines: the legacy builder's "Step 3/9 : RUN ..." and BuildKit's "#7 [3/9] RUN ...".
_BUILD_STEP = re.compile(r"^(?:Step \d+/\d+ : |#\d+ \[[^\]]+\] )")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_terminal(out: TextIO) -> bool:
    isatty = getattr(out, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def wants_color(out: TextIO) -> bool:
    return is_terminal(out) and not os.environ.get("NO_COLOR")


class Reporter:
    def __init__(self, out: TextIO | None = None, *, color: bool | None = None):
        self.out = out or sys.stdout
        self.color = wants_color(self.out) if color is None else color
        self.timings: dict[str, float] = {}
        self._printing = threading.Lock()

    def styled(self, style: str, text: str) -> str:
        return f"{_STYLES[style]}{text}{_RESET}" if self.color else text

    def line(self, text: str) -> None:
        if text.startswith("warning:"):
            text = self.styled("warn", text)
        with self._printing:
            print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        self.line(f"    {text}")

    def check(self, ok: bool, name: str, detail: str) -> None:
        label = self.styled("pass", "PASS") if ok else self.styled("fail", "FAIL")
        self.line(f"    {label}  {name:<16} {detail}")

    @contextlib.contextmanager
    def step(self, name: str, what: str = "") -> Iterator[None]:
        """A step: its header, then its own lines, then how long it took (also in the summary's breakdown)."""
        self.line(self.styled("step", f"==> {name}") + (f" {what}" if what else ""))
        started = time.monotonic()
        try:
            yield
        finally:
            took = time.monotonic() - started
            self.timings[name] = self.timings.get(name, 0.0) + took
        self.note(self.styled("dim", f"{name} took {took:.1f}s"))

    @contextlib.contextmanager
    def live(self, label: str) -> Iterator[LiveLine]:
        """One line that keeps ``label``, the time so far and the newest progress line fed to it up to date on a
        terminal, gone when the block ends; elsewhere it prints nothing."""
        line = LiveLine(self.out, label, self._printing, enabled=is_terminal(self.out))
        line.start()
        try:
            yield line
        finally:
            line.stop()

    def breakdown(self, names: list[str] | None = None) -> str:
        names = names or list(self.timings)
        return ", ".join(f"{n} {self.timings[n]:.1f}s" for n in names if n in self.timings)


class LiveLine:
    """``feed`` it a command's output lines; a build's own step lines are the ones it shows."""

    TICK = 0.25

    def __init__(self, out: TextIO, label: str, printing: threading.Lock, *, enabled: bool):
        self.out, self.label, self.enabled = out, label, enabled
        self._printing = printing
        self._current = ""
        self._started = time.monotonic()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def feed(self, text: str) -> None:
        text = _CONTROL.sub(" ", text).strip()
        if text and (_BUILD_STEP.match(text) or not self._current):
            self._current = text

    def start(self) -> None:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="live-line", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            with self._printing:
                self.out.write("\r\x1b[K")
                self.out.flush()

    def render(self, width: int) -> str:
        text = f"    {self.label} {time.monotonic() - self._started:5.1f}s  {self._current}"
        return text if len(text) <= width else text[: max(0, width - 1)] + "…"

    def _run(self) -> None:
        while not self._done.wait(self.TICK):
            width = shutil.get_terminal_size((100, 20)).columns - 1
            with self._printing:
                self.out.write("\r\x1b[K" + self.render(width))
                self.out.flush()
