#!/usr/bin/env python3
"""What the front proxy costs per request, and how long a switch takes seen through it, in one run.

Usage, from the repository root, with the Docker engine running, the local images built (local/caddy:2 among them)
and Debian's pebble installed (scripts/bootstrap does all of it):

    .venv/bin/python bench/front.py                 # 300 requests per path, 40 requests/s during the deploy
    .venv/bin/python bench/front.py --requests 1000

In a throwaway clone with its own compose project, ports, front proxy and test CA (Pebble, real HTTP-01), all
removed at the end, it deploys the reference app behind the front proxy with a certificate, then measures:

  latency   GET /api/health, one after the other, each on a new connection (as independent users): directly on the
            environment's own port (its nginx: the baseline) and through the front proxy by name over HTTPS with
            SNI (TLS handshake included); and over HTTPS on one kept-alive connection. p50 and p99 per
            request, and what the front adds to the baseline at each.
  switch    a deploy of a one-line change under load on both the direct port and the name over HTTPS: the gap
            between the last answer from the old revision and the first from the new one on each path (the switch
            as users see it), and the failed requests; then the time one config load through the front's admin API
            takes (`caddy reload`, as every deploy and maintenance switch does it), median of 5.
"""

from __future__ import annotations

import argparse
import http.client
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from droplet_deploy.commands import front as front_cmd  # noqa: E402
from tests.conftest import free_port, make_project, remove_project_resources  # noqa: E402
from tests.support.acme import running_pebble  # noqa: E402
from tests.support.front import NamedLoad, _Pinned, wait_get  # noqa: E402
from tests.support.load import Load, Report  # noqa: E402

NAME = "bench.app.test"
CADDY_IMAGE = "local/caddy:2"


def say(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def run(argv: list[str], *, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)  # noqa: S603 - argv built here


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed_gets(make, count: int, *, keep_alive: bool = False) -> list[float]:
    times = []
    conn = make() if keep_alive else None
    for _ in range(count):
        c = conn or make()
        started = time.perf_counter()
        c.request("GET", "/api/health", headers={"Host": NAME})
        response = c.getresponse()
        response.read()
        times.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise RuntimeError(f"GET /api/health answered {response.status}")
        if conn is None:
            c.close()
    if conn is not None:
        conn.close()
    return times


def switch_gap(report: Report, old: str, new: str) -> float | None:
    last_old = max((s.done for s in report.samples if s.revision and s.revision.startswith(old)), default=None)
    first_new = min((s.done for s in report.samples if s.revision and s.revision.startswith(new)), default=None)
    if last_old is None or first_new is None:
        return None
    return max(0.0, first_new - last_old)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rate", type=float, default=40.0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-front-"))
    http_port, https_port, admin = free_port(), free_port(), free_port()
    front_name = f"dtfront{uuid.uuid4().hex[:8]}"
    (base / "p").mkdir()
    project = make_project(base / "p")
    try:
        with running_pebble(base / "pebble", http_port=http_port) as pebble:
            root = pebble.write_root(base / "root.pem")
            project.configure(
                http_port=http_port, https_port=https_port, front_admin_port=admin, front_bind="127.0.0.1",
                front_name=front_name, front_dir=str(base / "front-dir"), front_image=CADDY_IMAGE,
                acme_directory=pebble.directory_url, acme_ca_bundle=str(pebble.ca_bundle),
                environments={"test": {"hosts": [NAME]}})
            say("deploying behind the front proxy")
            project.inv("deploy.test")
            if wait_get(NAME, https_port, "/api/health", root=root).status != 200:
                raise RuntimeError(f"{NAME} is not served over HTTPS")
            context = ssl.create_default_context(cafile=str(root))
            paths = {
                "direct (env's nginx)": lambda: http.client.HTTPConnection("127.0.0.1", project.port, timeout=5),
                # One TLS context for every connection, as a browser keeps its trust store loaded.
                "front, HTTPS by name (SNI)": lambda: _Pinned(NAME, https_port, "127.0.0.1", context, 5),
            }
            results = {}
            for label, make in paths.items():
                say(f"latency: {label}")
                timed_gets(make, 20)  # warm up
                results[label] = timed_gets(make, args.requests)
            say("latency: front, HTTPS kept alive")
            results["front, HTTPS kept alive"] = timed_gets(paths["front, HTTPS by name (SNI)"], args.requests,
                                                            keep_alive=True)
            old = project.head()
            routes = project.path / "app" / "routes.py"
            routes.write_text(routes.read_text() + "\nRELEASE_NOTE = 'bench front'\n")
            new = project.commit("bench: a one-line change")
            say(f"deploy under load ({args.rate:g} req/s on each path)")
            with Load(f"{project.url}/api/health", rate=args.rate, max_seconds=600) as direct, \
                    NamedLoad(NAME, https_port, "/api/health", root=root, rate=args.rate, max_seconds=600) as front:
                project.inv("deploy.test")
                direct.wait(2)
                front.wait(2)
            direct_report, front_report = direct.report(), front.report()
            container = run(front_cmd.containers(front_name), check=True).stdout.split()[2]
            loads = []
            for _ in range(5):
                started = time.perf_counter()
                run(front_cmd.reload(container, f"127.0.0.1:{admin}"), check=True)
                loads.append(time.perf_counter() - started)
    finally:
        for line in run(["docker", "ps", "-aq", "--filter", f"label={front_cmd.LABEL}={front_name}"]).stdout.split():
            run(["docker", "rm", "-f", line])
        run(["docker", "volume", "rm", "-f", f"{front_name}-data", f"{front_name}-config"])
        remove_project_resources(project.name)

    baseline = results["direct (env's nginx)"]
    b50, b99 = percentile(baseline, 0.5), percentile(baseline, 0.99)
    print(f"\nlatency of GET /api/health, {args.requests} requests per path (ms)")
    print(f"{'path':32} {'p50':>8} {'p99':>8} {'+p50':>8} {'+p99':>8}")
    for label, values in results.items():
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        extra = "" if values is baseline else f" {p50 - b50:+8.2f} {p99 - b99:+8.2f}"
        print(f"{label:32} {p50:8.2f} {p99:8.2f}{extra}")
    print(f"\ndeploy of a one-line change under load ({args.rate:g} req/s on each path)")
    for label, report in (("direct (env's nginx)", direct_report), ("front, HTTPS by name", front_report)):
        gap = switch_gap(report, old[:12], new[:12])
        shown = "n/a" if gap is None else f"{gap * 1000:.0f} ms"
        print(f"{label:32} {report.requests} requests, {report.failed} failed, old->new revision gap {shown}")
    print(f"front config load (caddy reload through the admin API), median of 5: "
          f"{statistics.median(loads) * 1000:.0f} ms (min {min(loads) * 1000:.0f}, max {max(loads) * 1000:.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
