#!/usr/bin/env python3
"""Deploy wall time and failed requests under load: our zero-downtime rollout against the seed's flow.

Usage, from the repository root, with the Docker engine running and the local base images built (as for the
integration tests; scripts/bootstrap does both):

    .venv/bin/python bench/rollout.py                      # 25 requests/s, a 2 s app boot
    .venv/bin/python bench/rollout.py --rate 40 --boot 5

Everything happens in a throwaway clone of this repository with its own compose projects, image name and public
ports, and everything it created is removed at the end. During each run the load client the zero-downtime tests
use (tests/support/load.py) sends GET /api/health to 127.0.0.1:<public port> at a fixed rate, and stops itself.

Runs, in order, each under load:
  ours: deploy a one-line change      `inv deploy.test` (build with cache, verify, start beside, switch, drain)
  ours: bad release (never healthy)   /api/health answers 503: rolled back automatically, exit 1 expected
  ours: rollback                      `inv deploy.rollback` to the release before, from its kept image
  seed: down, build, up, poll 5 s     the seed scripts' flow on the same app and compose file: `docker compose
                                      down`, `docker build --no-cache` (same build args), `docker compose up -d`,
                                      then GET /api/health every 5 s until the new revision answers
Then the raw floor, measured directly: `docker build` of a one-line change (cache on, so only the changed layers
run) + `docker run` until the container has started + its boot until /api/health answers on its own address.
Our deploy's overhead shows as its ratio to that floor.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from droplet_deploy.commands import docker as docker_cmd  # noqa: E402
from tests.conftest import BASE_IMAGE, PROXY_IMAGE, free_port, make_project, remove_project_resources  # noqa: E402
from tests.support import releases  # noqa: E402
from tests.support.load import Load, Report  # noqa: E402

SETTLE = 1.5  # seconds of load after each command, so the old container's drain and removal are covered
SEED_POLL = 5.0  # the seed scripts' health poll interval
RUN_LIMIT = 900.0  # no run, and so no load, lasts longer than this


@dataclass(frozen=True)
class Row:
    name: str
    wall: float
    report: Report
    note: str = ""


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = RUN_LIMIT) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,  # noqa: S603 - argv built here
                            timeout=timeout, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        tail = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise SystemExit(f"bench: `{' '.join(argv[:4])} ...` exited {result.returncode}: {tail[0]}")
    return result


def under_load(name: str, port: int, rate: float, action: Callable[[], str]) -> Row:
    """Run ``action`` with the load client on the public port; the load starts before it and ends SETTLE after."""
    say(f"{name} ...")
    with Load(f"http://127.0.0.1:{port}/api/health", rate=rate, max_seconds=RUN_LIMIT) as load:
        started = time.monotonic()
        note = action()
        wall = time.monotonic() - started
        load.wait(SETTLE)
    row = Row(name, wall, load.report(), note)
    say(f"{name}: {wall:.1f}s, {row.report.describe(limit=3)}")
    return row


def inv_action(project, *args: str, expect: int = 0) -> Callable[[], str]:
    def action() -> str:
        result = project.inv(*args, check=False, timeout=RUN_LIMIT)
        if result.returncode != expect:
            lines = [line for line in result.stderr.splitlines() if line.startswith("error:")] or ["no error line"]
            raise SystemExit(f"bench: inv {' '.join(args)} exited {result.returncode}, expected {expect}: {lines[-1]}")
        if expect:
            return "exit 1 as expected; the old container kept serving"
        summary = [line for line in result.stdout.splitlines() if line.startswith(("deployed ", "rolled back "))]
        return summary[-1] if summary else ""

    return action


def wait_revision(url: str, revision: str, *, interval: float, limit: float = RUN_LIMIT) -> None:
    import requests

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).json().get("revision") == revision:
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(interval)
    raise SystemExit(f"bench: {url} never reported {revision[:12]} within {limit:.0f}s")


def build_argv(project, image: str, revision: str, *, no_cache: bool) -> list[str]:
    # Our own builder, so the seed run and the floor build with exactly the args `inv deploy.test` uses.
    return docker_cmd.build(image=image, revision=revision, context=".", dockerfile="./Dockerfile",
                            build_args={"BASE_IMAGE": BASE_IMAGE}, no_cache=no_cache)


def seed_flow(project, rate: float) -> Row:
    """The seed scripts' deploy, on its own compose project of the same app, so nothing of ours helps it."""
    name = f"{project.name}-seed"
    port = free_port()
    image = f"{project.name}:seed"
    env = {**os.environ, "APP_IMAGE": image, "PROXY_IMAGE": PROXY_IMAGE, "PUBLIC_PORT": str(port)}
    compose = ["docker", "compose", "--project-name", name, "--file", "docker-compose.test.yml"]
    health = f"http://127.0.0.1:{port}/api/health"

    say("seed: first start of its own stack (not measured)")
    run(build_argv(project, image, project.head(), no_cache=False), cwd=project.path)
    run([*compose, "up", "-d"], cwd=project.path, env=env)
    wait_revision(health, project.head(), interval=0.5)
    new = releases.one_line_change(project, "seed release")

    def action() -> str:
        run([*compose, "down"], cwd=project.path, env=env)
        run(build_argv(project, image, new, no_cache=True), cwd=project.path)
        run([*compose, "up", "-d"], cwd=project.path, env=env)
        wait_revision(health, new, interval=SEED_POLL)
        return "site down from `down` until the new container answers"

    try:
        return under_load("seed: down, build --no-cache, up, poll 5 s", port, rate, action)
    finally:
        run([*compose, "down", "--volumes"], cwd=project.path, env=env, check=False)


# How the floor starts the reference app: the settings docker-compose.test.yml gives it.
REFERENCE_RUN_ARGS = ("--env-file", "config/development.env", "--env", "APP_ENV=test")


def raw_floor(project, run_args: tuple[str, ...] = REFERENCE_RUN_ARGS) -> tuple[float, float, float]:
    """(build, start, boot) seconds for a one-line change, with nothing of ours around it."""
    revision = releases.one_line_change(project, "floor release")
    image = f"{project.name}:floor"
    started = time.monotonic()
    run(build_argv(project, image, revision, no_cache=False), cwd=project.path)
    build = time.monotonic() - started

    started = time.monotonic()
    container = run(["docker", "run", "--detach", *run_args, "--name", f"{project.name}-floor", image],
                    cwd=project.path).stdout.strip()
    start = time.monotonic() - started
    try:
        address = run(["docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                       container], cwd=project.path).stdout.strip()
        started = time.monotonic()
        wait_revision(f"http://{address}:8000/api/health", revision, interval=0.05, limit=120)
        boot = time.monotonic() - started
    finally:
        run(["docker", "rm", "--force", container], cwd=project.path, check=False)
    return build, start, boot


def table(rows: list[Row], floor: tuple[float, float, float], rate: float, boot: float) -> str:
    header = f"{'run':<44} {'wall s':>7} {'requests':>9} {'failed':>7} {'longest outage s':>17}"
    lines = [f"load: GET /api/health at {rate:g}/s on the public port; app boot {boot:g}s", "", header,
             "-" * len(header)]
    for row in rows:
        lines.append(f"{row.name:<44} {row.wall:>7.1f} {row.report.requests:>9} {row.report.failed:>7} "
                     f"{row.report.longest_outage:>17.2f}")
    lines += ["", *(f"  {row.name}: {row.note}" for row in rows if row.note)]
    build, start, booted = floor
    total = build + start + booted
    ours = rows[0].wall
    seed = next((r.wall for r in rows if r.name.startswith("seed")), None)
    lines += ["", f"raw floor: build {build:.1f}s + container start {start:.1f}s + boot {booted:.1f}s = {total:.1f}s",
              f"ours (one-line change) / floor: {ours / total:.2f}x"
              + (f"   seed / floor: {seed / total:.2f}x" if seed else "")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=25.0, help="requests per second (at least 20; default 25)")
    parser.add_argument("--boot", type=float, default=2.0, help="seconds the app sleeps before listening (default 2)")
    parser.add_argument("--health-timeout", type=float, default=10.0,
                        help="seconds the bad release gets before it is rolled back (default 10)")
    args = parser.parse_args(argv)
    if not 20 <= args.rate <= 200:
        parser.error("--rate must be between 20 and 200")

    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        project = make_project(Path(tmp))
        try:
            good = releases.slow_boot(project, args.boot)
            say(f"clone {project.path}, first deploy (not measured)")
            inv_action(project, "deploy.test")()

            rows = []
            releases.one_line_change(project, "bench release")
            rows.append(under_load("ours: deploy a one-line change", project.port, args.rate,
                                   inv_action(project, "deploy.test")))
            releases.unhealthy(project)
            rows.append(under_load("ours: bad release (never healthy)", project.port, args.rate,
                                   inv_action(project, "deploy.test", "--health-timeout", f"{args.health_timeout:g}",
                                              expect=1)))
            rows.append(under_load("ours: rollback", project.port, args.rate, inv_action(project, "deploy.rollback")))
            releases.restore(project, good)

            say("raw floor ...")
            floor = raw_floor(project)
            say("taking our stack down before the seed run")
            run(["docker", "compose", "--project-name", project.compose_project(), "--file",
                 "docker-compose.test.yml", "down"], cwd=project.path, env=project.env(PUBLIC_PORT=str(project.port)))
            rows.append(seed_flow(project, args.rate))
        finally:
            remove_project_resources(project.name)
    print(table(rows, floor, args.rate, args.boot))
    return 0


if __name__ == "__main__":
    sys.exit(main())
