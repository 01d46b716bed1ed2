#!/usr/bin/env python3
"""Swarm image distribution per release: the whole image by ``docker save | docker load`` against the manager's
registry relayed to each node (only the layers a node lacks, every node at once), to one and to two nodes.

Usage, from the repository root, with the Docker engine running and the local images built (as for the
integration tests: the base image, local/registry:2 and local/swarm-node:latest):

    .venv/bin/python bench/distribution.py                # 3 rounds
    .venv/bin/python bench/distribution.py --rounds 5

The engine becomes a single-node swarm manager for the run when it is in no swarm (and leaves it afterwards), and
two engines in containers join it as workers (tests/support/swarm.py), reached as a user names them in
``swarm_nodes``. The reference app's image (231 MB) is built per revision in a throwaway clone. Each round builds a
new one-line release for the one-node runs and another for the two-node runs, and times both methods on it,
paired and in alternating order (the machine is shared: a busy moment slows both alike); before each run the
release is removed from the workers, which keep the release before. "full": the workers hold nothing of the
app (what the toolkit does then is save | load too: there is nothing on the node yet to run the relay from).
Printed: medians of the wall time of ``ensure_everywhere`` per release, and the bytes the relay carried.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from droplet_deploy.engines.swarm.distribute import Delivery, NodeEngine, ensure_everywhere, node_engine  # noqa: E402
from droplet_deploy.engines.swarm.registry import ImageRegistry  # noqa: E402
from tests.conftest import BASE_IMAGE, PROXY_IMAGE, make_project, remove_project_resources  # noqa: E402
from tests.support import releases  # noqa: E402
from tests.support.registry import IMAGE as REGISTRY_IMAGE  # noqa: E402
from tests.support.swarm import SwarmApp, single_node_swarm, worker_node  # noqa: E402
from tests.support.swarm import _docker as docker  # noqa: E402


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def drop(image: str, nodes: list[NodeEngine]) -> None:
    for node in nodes:
        docker(*node.docker[1:], "image", "rm", "--force", image, check=False)


def drop_all(repository: str, nodes: list[NodeEngine]) -> None:
    for node in nodes:
        listed = docker(*node.docker[1:], "image", "ls", "--format", "{{.ID}}", repository, check=False).split()
        if listed:
            docker(*node.docker[1:], "image", "rm", "--force", *set(listed), check=False)


def timed(app: SwarmApp, image: str, nodes: list[NodeEngine], registry: ImageRegistry | None,
          quiet=lambda text: None) -> tuple[float, list[Delivery]]:
    started = time.monotonic()
    deliveries = ensure_everywhere(app.target, image, nodes, registry=registry, say=quiet)
    return time.monotonic() - started, deliveries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    times: dict[tuple[str, int, str], list[float]] = {}
    carried: dict[int, list[int]] = {}
    with single_node_swarm() as manager, tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp:
        project = make_project(Path(tmp))
        app = SwarmApp(project, base_image=BASE_IMAGE, proxy_image=PROXY_IMAGE, stack=f"{project.name}-dist")
        registry = ImageRegistry(app.stack, REGISTRY_IMAGE)
        try:
            with worker_node(manager) as one, worker_node(manager) as two:
                if isinstance(one, str) or isinstance(two, str):
                    raise SystemExit(f"a second engine cannot run here: {one if isinstance(one, str) else two}")
                workers = [node_engine(one.docker_host), node_engine(two.docker_host)]
                # Not measured: the first release by save | load, the next through the registry (each worker's
                # engine learns the layers' registry digests by pulling them once).
                for label in ("first", "primed"):
                    revision = releases.one_line_change(project, label) if label != "first" else project.head()
                    image = app.build(revision)
                    say(f"{label} release {image} to both workers")
                    ensure_everywhere(app.target, image, workers, registry=registry, say=say)
                for number in range(args.rounds):
                    for count in (1, 2):
                        image = app.build(releases.one_line_change(project, f"round {number} on {count}"))
                        nodes = workers[:count]
                        methods = [("save | load", None), ("registry", registry)]
                        for method, via in methods if number % 2 == 0 else reversed(methods):
                            drop(image, nodes)
                            wall, deliveries = timed(app, image, nodes, via)
                            times.setdefault(("one-line", count, method), []).append(wall)
                            if via is not None:
                                carried.setdefault(count, []).extend(d.carried or 0 for d in deliveries)
                            say(f"one-line change, {count} node(s), {method}: {wall:.2f}s "
                                f"({', '.join(d.how for d in deliveries)})")
                for _ in range(args.rounds):
                    for count in (1, 2):
                        nodes = workers[:count]
                        drop_all(project.name, nodes)
                        wall, deliveries = timed(app, image, nodes, registry)
                        times.setdefault(("full", count, "ours"), []).append(wall)
                        say(f"full image, {count} node(s): {wall:.2f}s ({', '.join(d.how for d in deliveries)})")
        finally:
            docker("rm", "-f", "-v", registry.name, check=False)
            docker("volume", "rm", "-f", registry.name, check=False)
            remove_project_resources(project.name)
    size = 231
    print(f"distribution time per release, medians of {args.rounds} (paired, alternating order, on a shared "
          "2-core machine)\n")
    print(f"{'change':<10} {'nodes':>5} {'save | load s':>14} {'registry s':>11} {'ratio':>6}")
    for count in (1, 2):
        plain = statistics.median(times[("one-line", count, "save | load")])
        ours = statistics.median(times[("one-line", count, "registry")])
        print(f"{'one-line':<10} {count:>5} {plain:>14.2f} {ours:>11.2f} {plain / ours:>5.1f}x")
    for count in (1, 2):
        full = statistics.median(times[("full", count, "ours")])
        print(f"{'full':<10} {count:>5} {full:>14.2f} {'(same)':>11}")
    moved = {count: statistics.median(values) for count, values in carried.items()}
    print(f"\nbytes the relay carried per node for a one-line change (median): "
          f"{', '.join(f'{c} node(s): {m / 1000:.1f} kB' for c, m in moved.items())} of a {size} MB image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
