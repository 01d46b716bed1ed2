"""What the user sees: step headers with timings, check lines, one summary line."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO


class Reporter:
    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self.timings: dict[str, float] = {}

    def line(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        self.line(f"    {text}")

    def check(self, ok: bool, name: str, detail: str) -> None:
        self.line(f"    {'PASS' if ok else 'FAIL'}  {name:<16} {detail}")

    @contextlib.contextmanager
    def step(self, name: str, what: str = "") -> Iterator[None]:
        self.line(f"==> {name}{(' ' + what) if what else ''}")
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - started

    def breakdown(self, names: list[str] | None = None) -> str:
        names = names or list(self.timings)
        return ", ".join(f"{n} {self.timings[n]:.1f}s" for n in names if n in self.timings)
