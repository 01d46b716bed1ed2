"""``deploy.logs``: the stack's logs, filtered by line (``--grep``) and followed; read-only, so it runs under
``--dry`` too."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from droplet_deploy.core.errors import CommandFailed, UsageError
from droplet_deploy.session import Session


class LineFilter:
    """Passes on the whole lines that match ``pattern``; output arrives in chunks that split lines anywhere."""

    def __init__(self, pattern: re.Pattern[str], write: Callable[[str], None]):
        self.pattern = pattern
        self.write = write
        self._partial = ""

    def __call__(self, text: str) -> None:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            if self.pattern.search(line):
                self.write(line + "\n")

    def close(self) -> None:
        if self._partial and self.pattern.search(self._partial):
            self.write(self._partial + "\n")
        self._partial = ""




def grep_pattern(text: str) -> re.Pattern[str]:
    """``--grep``: a regular expression, case-insensitive (``error`` also finds ``"level": "ERROR"``)."""
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise UsageError(f"--grep {text!r} is not a regular expression: {exc}",
                         hint="quote it, or escape special characters with a backslash") from None


def logs(session: Session, *, services: Sequence[str] = (), since: str | None = None, tail: int | None = None,
         follow: bool = False, grep: str | None = None, write: Callable[[str], None]) -> None:
    """Stream the stack's logs (all services unless named) to ``write``; read-only, so it runs under --dry."""
    pattern = grep_pattern(grep) if grep else None
    for argv in session.backend.log_commands(services, since=since, tail=tail, follow=follow):
        out = LineFilter(pattern, write) if pattern else write
        try:
            result = session.target.follow(argv, out)
        finally:
            if isinstance(out, LineFilter):
                out.close()
        interrupted = follow and result.exit_status == 130  # Ctrl-C is how --follow ends
        if not result.ok and not interrupted:
            raise CommandFailed(argv, result.exit_status, "see the output above", where=session.where)
