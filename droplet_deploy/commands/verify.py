"""verify.build's checks inside one throwaway container of the image: one container start instead of four.

VERIFY_CHECKS runs each check in turn and frames its output between lines that carry a per-run marker, the check's
name and its exit status, so one stdout holds every answer. Values arrive as positional parameters (the marker,
the app directory, the env file's own name or "", then the check command's argv), never spliced into the script.
"""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.commands.docker import run_once

# The names, in the order they run; the parser in droplet_deploy/steps/verify.py reads the sections by these names.
SECTIONS = ("bytecode", "user", "env", "imports")

VERIFY_CHECKS = (
    'm="$1"; dir="$2"; own="$3"; shift 3; '
    'begin() { printf "%s begin %s\\n" "$m" "$1"; }; '
    'end() { printf "\\n%s end %s %s\\n" "$m" "$1" "$2"; }; '
    'begin bytecode; find "$dir" "(" -name "*.pyc" -o -name "*.pyo" -o -name __pycache__ ")" -print 2>/dev/null; '
    'end bytecode "$?"; '
    'begin user; id -u 2>/dev/null; end user "$?"; '
    'begin env; if [ -n "$own" ]; then '
    'find / -xdev "(" -name .env -o -name ".env.*" -o -name "$own" ")" -not -name .env.example -print 2>/dev/null; '
    'else find / -xdev "(" -name .env -o -name ".env.*" ")" -not -name .env.example -print 2>/dev/null; fi; '
    'end env "$?"; '
    'begin imports; "$@" 2>&1; end imports "$?"'
)


def in_one_container(image: str, marker: str, app_dir: str, own_env_name: str, check_command: Sequence[str]) -> list[str]:
    """Every check of verify.build in one container with no network; needs ``sh`` in the image."""
    return run_once(image, ["-c", VERIFY_CHECKS, "verify", marker, app_dir, own_env_name, *check_command],
                    entrypoint="sh")
