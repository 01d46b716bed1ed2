#!/usr/bin/env python3
"""Failed requests and wall time on a Swarm: a plain `docker stack deploy` against the toolkit's rollout.

Usage, from the repository root, with the Docker engine running and the local base images built (as for the
integration tests):

    .venv/bin/python bench/swarm.py                  # 20 requests/s, a 2 s app boot, 2 replicas
    .venv/bin/python bench/swarm.py --rate 40 --boot 5
    .venv/bin/python bench/swarm.py --distribution   # image distribution per release instead (bench/distribution.py)

The engine becomes a single-node swarm manager for the run when it is in no swarm (and leaves it afterwards);
an existing swarm is used as it is and left alone. Everything runs in a throwaway clone of this repository:
the same app image per revision, the same stack file planned from docker-compose.test.yml (2 replicas,
``endpoint_mode: dnsrr``, start-first, parallelism 1) and the same front nginx (published in host mode,
resolving the app's tasks per request with ``valid=1s``). Only the rollout differs. Each variant has a stack
and public port of its own; its first deploy is not measured.

Runs, each under load (tests/support/load.py: GET /api/health on the stack's public port at a fixed rate):
  plain, app health check as written   `docker stack deploy`, then polled until every task runs the new image
  plain, no health check               the same without a health check (the compose file has none, or the
                                       image's own is disabled): tasks count as running when they start
  ours                                 deploy.swarm.rollout: revision-gated health check, converge, prove tasks
  plain, stale-revision release        the new code reports another revision than it was built from
  ours, stale-revision release         the same release through ours (rolled back, exit expected)
Wall time: from the command until every task runs the new image (plain), or until ours returned; for the
good releases the sum of ``--rounds`` deploys (alternating two revisions, 3 s of load between them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from droplet_deploy.commands import swarm as swarm_cmd  # noqa: E402
from droplet_deploy.core.errors import RolloutFailed  # noqa: E402
from droplet_deploy.engines.swarm.rollout import SwarmRelease, convergence, rollout  # noqa: E402
from droplet_deploy.engines.swarm.state import read_stack  # noqa: E402
from tests.conftest import BASE_IMAGE, PROXY_IMAGE, free_port, make_project, remove_project_resources  # noqa: E402
from tests.support import releases  # noqa: E402
from tests.support.load import Load, Report  # noqa: E402
from tests.support.swarm import SwarmApp, single_node_swarm  # noqa: E402

SETTLE = 3.0  # seconds of load after each run: the old tasks' removal from DNS and their drain
RUN_LIMIT = 300.0


@dataclass(frozen=True)
class Row:
    name: str
    wall: float
    report: Report
    expected: tuple[str, ...]
    note: str = ""

    @property
    def other_revisions(self) -> int:
        """Requests answered by a revision that is neither the one before nor the expected one."""
        return sum(1 for s in self.report.samples if not s.failed and s.revision not in (None, *self.expected))


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def own_check(stack: dict, compose: dict) -> None:
    """Plain: the app's health check as the compose file has it, no revision gate, Swarm's defaults."""
    app = stack["services"]["app"]
    app["healthcheck"] = dict(compose["services"]["app"]["healthcheck"])
    app["deploy"]["update_config"] = {"parallelism": 1, "order": "start-first"}
    app["deploy"].pop("rollback_config", None)


def no_check(stack: dict, compose: dict) -> None:
    own_check(stack, compose)
    stack["services"]["app"]["healthcheck"] = {"disable": True}


def plain_deploy(app: SwarmApp, release: SwarmRelease) -> Callable[[], str]:
    def action() -> str:
        started = time.monotonic()
        app.target.run(swarm_cmd.stack_deploy(release.stack_file, release.stack))
        returned = time.monotonic() - started
        while time.monotonic() - started < RUN_LIMIT:
            if convergence(read_stack(app.target, release.stack), release).done:
                return f"`docker stack deploy` returned after {returned:.1f}s, before anything changed"
            time.sleep(0.2)
        return "never converged"

    return action


def ours(app: SwarmApp, release: SwarmRelease, timeout: float) -> Callable[[], str]:
    def action() -> str:
        try:
            report = rollout(app.target, release, timeout=timeout)
        except RolloutFailed as failed:
            return f"rolled back: {failed.message[-90:]}"
        return f"every task proven: {', '.join(p.verdict.reason for p in report.proofs)}"

    return action


def rounds(actions) -> Callable[[], str]:
    """Several deploys one after the other, SETTLE apart; the note keeps each one's wall time."""
    def action() -> str:
        walls, notes = [], []
        for one in actions:
            started = time.monotonic()
            notes.append(one())
            walls.append(time.monotonic() - started)
            time.sleep(SETTLE)
        return f"each deploy {', '.join(f'{w:.1f}s' for w in walls)}; last: {notes[-1]}"

    return action


def measure(name: str, app: SwarmApp, rate: float, action: Callable[[], str], expected: tuple[str, ...]) -> Row:
    say(f"{name} ...")
    with Load(app.url + "/api/health", rate=rate, max_seconds=RUN_LIMIT * 2) as load:
        time.sleep(1.0)
        started = time.monotonic()
        note = action()
        wall = time.monotonic() - started
        load.wait(SETTLE)
    row = Row(name, wall, load.report(), expected, note)
    say(f"{name}: {wall:.1f}s, {row.report.describe(limit=3)}")
    return row


def table(rows: list[Row], rate: float, boot: float, replicas: int) -> str:
    header = f"{'run':<36} {'wall s':>7} {'requests':>9} {'failed':>7} {'outage s':>9} {'stale answers':>14}"
    lines = [f"load: GET /api/health at {rate:g}/s through the front nginx; {replicas} replicas; app boot {boot:g}s",
             "", header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row.name:<36} {row.wall:>7.1f} {row.report.requests:>9} {row.report.failed:>7} "
                     f"{row.report.longest_outage:>9.2f} {row.other_revisions:>14}")
    lines += ["", *(f"  {row.name}: {row.note}" for row in rows if row.note)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--distribution" in argv:
        from bench import distribution

        return distribution.main([word for word in argv if word != "--distribution"])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second (default 20)")
    parser.add_argument("--boot", type=float, default=2.0, help="seconds the app sleeps before listening (default 2)")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="deploys per good-release variant (default 3)")
    parser.add_argument("--bad-timeout", type=float, default=20.0,
                        help="seconds ours gives the stale release before rolling back (default 20)")
    args = parser.parse_args(argv)

    rows: list[Row] = []
    apps: list[SwarmApp] = []
    with single_node_swarm(), tempfile.TemporaryDirectory(prefix="bench-swarm-") as tmp:
        project = make_project(Path(tmp))
        try:
            plans = [("plain-hc", own_check), ("plain-nohc", no_check), ("ours", None)]
            for name, _ in plans:
                apps.append(SwarmApp(project, base_image=BASE_IMAGE, proxy_image=PROXY_IMAGE, replicas=args.replicas,
                                     stack=f"{project.name}-{name}", port=free_port()))
            plain_hc, plain_nohc, our_app = apps

            # Each revision is built once and planned for every variant while the tree is at that revision (the
            # stack file carries its env file's values).
            def releases_of(revision: str) -> list[SwarmRelease]:
                apps[0].build(revision)
                return [app.release(revision, build=False, adjust=adjust) for app, (_, adjust) in zip(apps, plans, strict=True)]

            first = releases.slow_boot(project, args.boot)
            firsts = releases_of(first)
            second = releases.one_line_change(project, "bench release")
            seconds = releases_of(second)
            stale = releases.wrong_revision(project)
            stales = releases_of(stale)
            for app, release in zip(apps, firsts, strict=True):
                say(f"{app.stack}: first deploy (not measured)")
                rollout(app.target, release, timeout=RUN_LIMIT)

            known = (first, second)
            # Losses are a matter of timing (which task nginx picks in which millisecond): each variant deploys
            # `rounds` times, alternating the two good revisions, under one load run.
            for index, (name, app) in enumerate([("plain, app health check as written", plain_hc),
                                                 ("plain, no health check", plain_nohc), ("ours", our_app)]):
                sequence = [(seconds if n % 2 == 0 else firsts)[index] for n in range(args.rounds)]
                deploy = (lambda a, r: ours(a, r, RUN_LIMIT)) if app is our_app else plain_deploy
                rows.append(measure(f"{name} (x{args.rounds})", app, args.rate,
                                    rounds(deploy(app, r) for r in sequence), known))
            rows.append(measure("plain, stale-revision release", plain_hc, args.rate,
                                plain_deploy(plain_hc, stales[0]), known))
            rows.append(measure("ours, stale-revision release", our_app, args.rate,
                                ours(our_app, stales[2], args.bad_timeout), known))
        finally:
            for app in apps:
                app.remove()
            remove_project_resources(project.name)
    print(table(rows, args.rate, args.boot, args.replicas))
    print("\nstale answers: requests answered by a revision the deploy did not build (the stale release's "
          "0000000stale)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
