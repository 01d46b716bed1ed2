"""Releases to deploy in tests and in ``bench/rollout.py``: a good one-line change and each kind of bad one.

Each function edits a clone (anything with ``path`` and ``commit(message)``, like the ``project`` fixture),
commits, and returns the new revision. Bad releases fail the way they fail in the field, at run time, not at
build time: the image's own ``--check`` step would stop an import error long before any rollout.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Protocol

ROUTES = "app/routes.py"
APP_ENV_FILE = "config/development.env"


class Clone(Protocol):
    path: Path

    def commit(self, message: str) -> str: ...


def _append(clone: Clone, relative: str, text: str) -> None:
    target = clone.path / relative
    target.write_text(target.read_text() + text)


def one_line_change(clone: Clone, label: str = "next release") -> str:
    """A harmless code change: a new module constant, so the code layer (not only the revision) changes."""
    _append(clone, ROUTES, f"\nRELEASE_NOTE = {label!r}\n")
    return clone.commit(label)


def unhealthy(clone: Clone) -> str:
    """The new code answers /api/health with 503 forever: it never becomes healthy."""
    _append(clone, ROUTES, '''

def _unhealthy(app, request):
    return json_response(503, {"status": "unhealthy", "revision": app.config.revision,
                               "checks": {"release": {"status": "fail"}}})


ROUTES[("GET", "/api/health")] = _unhealthy
''')
    return clone.commit("bad release: health answers 503")


def wrong_revision(clone: Clone, reported: str = "0000000stale") -> str:
    """The new container reports another revision than it was built from (the stale-code incident)."""
    _append(clone, APP_ENV_FILE, f"\nAPP_REVISION={reported}\n")
    return clone.commit("bad release: reports a stale revision")


def failing_endpoint(clone: Clone, path: str = "/") -> str:
    """Healthy and at the right revision, but ``path`` (one of deploy.check_endpoints) answers 500."""
    _append(clone, ROUTES, f'''

def _broken(app, request):
    return json_response(500, {{"error": "broken on purpose"}})


ROUTES[("GET", {path!r})] = _broken
''')
    return clone.commit(f"bad release: {path} answers 500")


def slow_boot(clone: Clone, seconds: float) -> str:
    """The app sleeps ``seconds`` before it listens (APP_BOOT_DELAY), like a real service loading its data."""
    env_file = clone.path / APP_ENV_FILE
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith("APP_BOOT_DELAY=")]
    env_file.write_text("\n".join([*lines, f"APP_BOOT_DELAY={seconds:g}"]) + "\n")
    return clone.commit(f"boot takes {seconds:g}s")


def broken_build(clone: Clone) -> str:
    """The image build itself fails (exit 3), before anything running could be touched."""
    _append(clone, "Dockerfile", "\nRUN exit 3\n")
    return clone.commit("bad release: the build fails")


def restore(clone: Clone, revision: str, message: str = "back to a good tree") -> str:
    """Put every tracked file back as it was at ``revision`` and commit that as a new revision."""
    subprocess.run(["git", "checkout", revision, "--", "."], cwd=clone.path, check=True, capture_output=True)
    return clone.commit(message)
