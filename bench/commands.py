#!/usr/bin/env python3
"""How many commands one deploy of a one-line change runs: the toolkit at a git revision against the work tree.

Usage, from the repository root, with the Docker engine running and the local base images built (as for the
integration tests; scripts/bootstrap does both):

    .venv/bin/python bench/commands.py --before <git revision>     # e.g. the commit before a change to the core
    .venv/bin/python bench/commands.py --before <git revision> --timeline   # also when each one ran

Both versions deploy the reference app in throwaway clones (their own compose projects, image names, ports): a
first deploy, not measured, then a one-line change, measured. Every `docker` and `git` the deploy starts goes
through a logging shim placed first on PATH, so the count covers each probe and change the toolkit makes,
whatever version it is, and nothing of the toolkit is changed to be counted. Everything created is removed.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import make_project, remove_project_resources  # noqa: E402
from tests.support import releases  # noqa: E402

SHIM = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> "$BENCH_COMMAND_LOG"
exec "{real}" "$@"
"""

# --timeline: the same line, after the command ended, prefixed with its start and end (seconds since the epoch).
TIMED_SHIM = """#!/bin/sh
started=$(date +%s.%N)
"{real}" "$@"
status=$?
printf '%s %s %s\\n' "$started" "$(date +%s.%N)" "$(basename "$0") $*" >> "$BENCH_COMMAND_LOG"
exit $status
"""


def shims(directory: Path, *, timed: bool = False) -> Path:
    directory.mkdir()
    for tool in ("docker", "git"):
        real = shutil.which(tool)
        if real is None:
            raise SystemExit(f"bench: {tool} not found on PATH")
        path = directory / tool
        path.write_text((TIMED_SHIM if timed else SHIM).format(real=real))
        path.chmod(0o755)
    return directory




def measure(label: str, revision: str, tmp: Path, shim_dir: Path, *,
            timed: bool = False) -> tuple[float, collections.Counter, list[str]]:
    """Wall time, commands by kind and (``timed``) the timeline of one deploy of a one-line change."""
    where = tmp / label
    where.mkdir()
    project = make_project(where)
    try:
        if revision != "WORKTREE":
            _checkout(project.path, revision)
        project.inv("deploy.test", timeout=600)
        releases.one_line_change(project, f"{label} release")
        log = where / "commands.log"
        env = {"BENCH_COMMAND_LOG": str(log), "PATH": f"{shim_dir}:{project.env()['PATH']}"}
        epoch, started = time.time(), time.monotonic()
        project.inv("deploy.test", timeout=600, **env)
        wall = time.monotonic() - started
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        words = [line.split()[2 if timed else 0:][:2] for line in lines]
        return wall, collections.Counter(" ".join(w) for w in words), timeline(lines, epoch) if timed else []
    finally:
        remove_project_resources(project.name)


def timeline(lines: list[str], epoch: float) -> list[str]:
    """Each command's start and end, in seconds from the moment `inv` was started, in the order they started."""
    rows = []
    for line in lines:
        start, end, command = line.split(" ", 2)
        rows.append((float(start) - epoch, float(end) - epoch, command))
    return [f"{start:6.2f} {end:6.2f} {end - start:5.2f}  {command[:110]}" for start, end, command in sorted(rows)]


def _checkout(path: Path, revision: str) -> None:
    """Put the toolkit (droplet_deploy/, tasks.py) of ``revision`` into the clone and commit it."""
    archive = subprocess.run(["git", "archive", revision, "droplet_deploy", "tasks.py"], cwd=REPO,  # noqa: S603
                             capture_output=True, check=True).stdout
    shutil.rmtree(path / "droplet_deploy")
    subprocess.run(["tar", "-x"], cwd=path, input=archive, check=True)  # noqa: S603 - fixed argv
    compileall.compile_dir(str(path / "droplet_deploy"), quiet=1)  # as make_project does for the work tree's
    for argv in (["git", "add", "-A"], ["git", "commit", "-q", "--allow-empty", "-m", f"toolkit at {revision}"]):
        subprocess.run(argv, cwd=path, check=True, capture_output=True,  # noqa: S603 - fixed argv
                       env={**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
                            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="HEAD", help="git revision of the toolkit to compare (default: HEAD)")
    parser.add_argument("--timeline", action="store_true",
                        help="also print when each command started and ended (start, end, seconds, command)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-commands-") as tmp_name:
        tmp = Path(tmp_name)
        shim_dir = shims(tmp / "shims", timed=args.timeline)
        results = {label: measure(label, revision, tmp, shim_dir, timed=args.timeline)
                   for label, revision in (("before", args.before), ("after", "WORKTREE"))}
    for label, (wall, _, rows) in results.items() if args.timeline else ():
        print(f"{label}: {wall:.2f} s from `inv deploy.test` to its exit; seconds since its start:")
        print("\n".join(f"  {row}" for row in rows) + "\n")
    kinds = sorted(set().union(*(counts for _, counts, _ in results.values())))
    header = f"{'command':<24} {'before':>7} {'after':>7}"
    print(f"commands run by one `inv deploy.test` of a one-line change (before: {args.before}, after: work tree)")
    print(header + "\n" + "-" * len(header))
    for kind in kinds:
        print(f"{kind:<24} {results['before'][1][kind]:>7} {results['after'][1][kind]:>7}")
    before, after = (sum(results[k][1].values()) for k in ("before", "after"))
    print("-" * len(header))
    print(f"{'total':<24} {before:>7} {after:>7}   ({after / before:.2f}x)")
    print(f"{'wall s':<24} {results['before'][0]:>7.1f} {results['after'][0]:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
