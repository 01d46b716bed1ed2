#!/usr/bin/env python3
"""The gap of taking over a running stack, against the gap of the seed's own restart, under the same load.

Usage, from the repository root, with the Docker engine running and the local base images built (as for the
integration tests):

    .venv/bin/python bench/takeover.py              # 20 requests/s, 3 runs
    .venv/bin/python bench/takeover.py --runs 5 --rate 40

Each run starts a stack the seed's way in a throwaway clone (`docker compose up -d --build` in its directory, so
under compose's default project name, its app publishing the port itself, data in a named volume), then, with the
load client of the zero-downtime tests (tests/support/load.py) on the public port:
  seed:  `docker compose up -d --force-recreate web`, the seed script's restart of the app (after its build)
  ours:  the first `inv deploy.test` with `project:` set to that name: start beside, prove, hand the port over
  later: a second `inv deploy.test`, which switches inside the proxy
and prints, per run, the gap the deploy printed (stop of the old container to the proxy's first answer), how long
requests failed, and the failures of the later deploy; then the median gap against the target (1 s) and the
seed's gap. Everything the runs created is removed at the end.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import BASE_IMAGE, make_project, remove_project_resources  # noqa: E402
from tests.integration.test_takeover import SEED, failing_for, start_the_seed_way  # noqa: E402
from tests.support.load import Load, Report  # noqa: E402

TARGET = 1.0
GAP = re.compile(r"port \d+ handed over to \S+: (\d+\.\d+)s from stopping")


def under_load(url: str, rate: float, action) -> tuple[Report, str]:
    with Load(url, rate=rate, max_seconds=600) as load:
        load.wait(1.0)
        out = action()
        load.wait(2.0)
    return load.report(), out


def one_run(rate: float) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="takeover-bench-"))
    project = make_project(tmp)
    try:
        moved = tmp / project.name
        shutil.move(project.path, moved)
        project.path = moved
        project.write("docker-compose.yml", SEED.format(base_image=BASE_IMAGE, port=project.port))
        project.commit("the compose file the script deployed")
        project.configure(app_service="web", environments={"test": {"compose_file": "docker-compose.yml",
                                                                    "project": project.name}})
        start_the_seed_way(project)
        url = project.url + "/api/health"

        seed, _ = under_load(url, rate, lambda: subprocess.run(
            ["docker", "compose", "up", "-d", "--force-recreate", "web"], cwd=project.path, check=True,
            capture_output=True, text=True).stderr)
        first, out = under_load(url, rate, lambda: (lambda r: r.stdout + r.stderr)(project.inv("deploy.test")))
        (printed,) = (float(g) for g in GAP.findall(out))
        project.write("app/bench.txt", "second release\n")
        project.commit("second release")
        later, _ = under_load(url, rate, lambda: project.inv("deploy.test").stdout)
        return {"seed": failing_for(seed), "gap": printed, "failing": failing_for(first),
                "failed": first.failed, "later_failed": later.failed}
    finally:
        remove_project_resources(project.name)
        subprocess.run(["docker", "image", "rm", "-f", f"{project.name}-web"], capture_output=True)  # noqa: S603
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args()
    rows = []
    print(f"{'run':>3}  {'seed restart':>12}  {'gap printed':>11}  {'failing for':>11}  {'failed':>6}  "
          f"{'later failed':>12}")
    for number in range(1, args.runs + 1):
        row = one_run(args.rate)
        rows.append(row)
        print(f"{number:>3}  {row['seed']:>11.2f}s  {row['gap']:>10.2f}s  {row['failing']:>10.2f}s  "
              f"{row['failed']:>6.0f}  {row['later_failed']:>12.0f}", flush=True)
    gap, seed = statistics.median(r["gap"] for r in rows), statistics.median(r["seed"] for r in rows)
    print(f"median gap {gap:.2f}s (target {TARGET:g}s: {'met' if gap <= TARGET else 'not met'}), "
          f"{gap / seed:.2f}x the seed's own restart ({seed:.2f}s) at {args.rate:g} requests/s; "
          f"later deploys failed {sum(r['later_failed'] for r in rows):.0f} request(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
