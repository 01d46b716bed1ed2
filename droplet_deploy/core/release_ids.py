"""Release ids: ``<UTC time>-<sha12>[-dirty]``, the name of a release's directory on a host (``host.ship``) and of
the files kept with it in the state dir (``transaction.release_files``). Pure: names in, names out.

A name sorts by time as text. One being written carries ``.incoming-`` in front until it is complete, so a
directory under its final name is always whole; one found later under the temporary name is an interrupted
deploy's leftover.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

RELEASE_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{12}(-dirty)?$")
INCOMING = ".incoming-"


def release_name(tag: str, now: float) -> str:
    """Sorts by time as text, and names the revision (``Revision.tag``) it holds."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + tag


def parse_release_names(stdout: str) -> list[str]:
    """Release directories in a listing, oldest first; anything else that lives there is ignored."""
    return sorted(line.strip() for line in stdout.splitlines() if RELEASE_RE.match(line.strip()))


def parse_leftovers(stdout: str) -> list[str]:
    """Releases an interrupted deploy left under their temporary name, in a listing that shows dot-names."""
    names = (line.strip() for line in stdout.splitlines())
    return sorted(n for n in names if n.startswith(INCOMING) and RELEASE_RE.match(n[len(INCOMING):]))


def to_prune(names: Iterable[str], keep: int, in_use: Iterable[str]) -> list[str]:
    """The releases to delete: all but the newest ``keep`` and any in use."""
    newest_first = sorted(set(names), reverse=True)
    spared = set(newest_first[:max(keep, 1)]) | set(in_use)
    return sorted(n for n in newest_first if n not in spared)
