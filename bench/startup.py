#!/usr/bin/env python3
"""`inv --list` in a project: the toolkit at a git revision against the work tree, paired.

Usage, from the repository root:

    .venv/bin/python bench/startup.py --before main           # 20 runs of each, alternating
    .venv/bin/python bench/startup.py --before HEAD~1 --runs 40

Two throwaway clones of this repository (tests/conftest.py's ``make_project``), one with droplet_deploy/ and
tasks.py at ``--before``, one with the work tree's, both run by this repository's venv. After one run each that
writes the bytecode cache, the runs alternate between the two, so a busy moment on a shared machine slows both
alike. Printed: the median wall time and CPU time (user + sys: what the wall time is on an idle machine) of each.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.commands import _checkout  # noqa: E402
from tests.conftest import VENV_BIN, Project, make_project  # noqa: E402


def once(project: Project) -> tuple[float, float]:
    argv = [str(VENV_BIN / "inv"), "--list"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    subprocess.run(argv, cwd=project.path, env=project.env(), capture_output=True, check=True)  # noqa: S603
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git revision of the toolkit to compare with")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        projects = {}
        for label in ("before", "after"):
            directory = Path(tmp, label)
            directory.mkdir()
            projects[label] = make_project(directory)
        _checkout(projects["before"].path, args.before)
        results: dict[str, list[tuple[float, float]]] = {label: [] for label in projects}
        for project in projects.values():
            once(project)
        for number in range(args.runs):
            order = list(projects) if number % 2 == 0 else list(reversed(projects))
            for label in order:
                results[label].append(once(projects[label]))
    print(f"`inv --list`, medians of {args.runs} runs each, alternating (bench/startup.py --before {args.before})")
    for label, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        print(f"  {label:<7} ({args.before if label == 'before' else 'work tree'}): {wall:.3f} s wall, {cpu:.3f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
