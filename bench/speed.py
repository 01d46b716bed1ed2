#!/usr/bin/env python3
"""How close a deploy of a one-line change comes to the raw docker floor, for two apps, locally and over SSH.

Usage, from the repository root, with the Docker engine running, the local base images built and OpenSSH's sshd
installed (as for the integration tests):

    .venv/bin/python bench/speed.py                          # 3 runs of each, medians
    .venv/bin/python bench/speed.py --before main --runs 5   # the toolkit at a git revision beside the work tree

Two apps, each in throwaway projects of its own (own compose projects, image names, public ports):
  reference   the app in app/, booting in 2 s (APP_BOOT_DELAY=2), deployed with docker-compose.test.yml
  small       a 40-line stdlib HTTP service the benchmark writes, booting in 0.5 s, single-stage Dockerfile
and two places:
  local       `inv deploy.test`
  ssh         `inv deploy.prod --host prod --skip-backup` through a real sshd on 127.0.0.1 (tests/support/sshd.py);
              the "host" is this machine and its engine, reached only through the SSH connection

For every app and place, runs alternate between the floor and each toolkit version, so drift on a shared machine
hits them alike; the table gives medians:
  floor, local   cached `docker build` of a one-line change (the build argv `inv build` uses) + `docker run` +
                 polling /api/health on the container's own address every 0.05 s until the new revision answers
  floor, ssh     one OpenSSH session: upload the commit (`git archive` into `tar -x`) + the same build + run +
                 polling on the host (curl every 0.05 s), timed until the healthy line arrives here
  ours           the `inv` command's wall time, under load (tests/support/load.py: GET /api/health on the public
                 port at --rate requests/s, from just before the command until 1.5 s after it)
Commands a deploy runs: locally every `docker` and `git` it starts (counted through the logging shim of
bench/commands.py, in one extra deploy that is not timed); over SSH every command session the deploy opens and
every login, both from the sshd's own log of the timed deploys.
Everything created (containers, volumes, networks, images, clones, the sshd) is removed at the end.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.commands import _checkout, shims  # noqa: E402
from bench.peer import DockerRollout  # noqa: E402
from bench.rollout import REFERENCE_RUN_ARGS, SETTLE, build_argv, raw_floor, say  # noqa: E402
from tests.conftest import VENV_BIN, Project, make_project, remove_project_resources, repo_files  # noqa: E402
from tests.integration.test_remote import configure_prod  # noqa: E402
from tests.support import releases  # noqa: E402
from tests.support.load import Load, Report  # noqa: E402
from tests.support.sshd import SshdHandle, running_sshd  # noqa: E402

RUN_LIMIT = 600.0
STEPS = ("preflight", "build", "verify.build", "rollout", "prune")
SUMMARY_RE = re.compile(r"^(?:deployed|planned) \S+ to \S+ on \S+ in [\d.]+s \((?P<steps>[^)]*)\)")
STEP_RE = re.compile(r"(?P<name>[\w.]+) (?P<seconds>[\d.]+)s")

# --- the second app: a small stdlib service, written into a project that holds only the toolkit ------------

SMALL_BOOT = 0.5
SMALL_FILES = {
    "app/__init__.py": '"""A small HTTP service for the speed benchmark."""\n',
    # bench: one_line_change appends here, as it does to the reference app's routes.
    "app/routes.py": '''"""What the service answers."""

import os

REVISION = os.environ.get("APP_REVISION", "unknown")


def health():
    return 200, {"status": "healthy", "revision": REVISION}


def home():
    return 200, {"hello": "world", "revision": REVISION}


ROUTES = {"/api/health": health, "/": home}
''',
    "app/__main__.py": f'''"""`python3 -m app` serves on :8000 after a {SMALL_BOOT:g} s boot; `--check` prints the route count."""

import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.routes import ROUTES

BOOT_SECONDS = {SMALL_BOOT!r}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        route = ROUTES.get(self.path.split("?")[0])
        status, body = route() if route else (404, {{"error": "not found"}})
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main(argv):
    if "--check" in argv:
        print(f"small app ok: {{len(ROUTES)}} routes")
        return 0
    time.sleep(BOOT_SECONDS)
    server = ThreadingHTTPServer(("0.0.0.0", 8000), Handler)
    # SIGTERM: stop accepting, let the requests in flight finish (server_close joins their threads), exit.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
''',
    "Dockerfile": """ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv
COPY app/ /srv/app/
ARG REVISION=unknown
LABEL org.opencontainers.image.revision="$REVISION"
ENV APP_REVISION="$REVISION"
USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
CMD ["python3", "-m", "app"]
""",
    ".dockerignore": ".git\n.deploy\n.env\n.env.*\n**/__pycache__\n**/*.pyc\ndeploy\ntasks.py\nproxy\n",
    "docker-compose.yml": """services:
  app:
    image: ${APP_IMAGE:-small-app:latest}
    expose:
      - "8000"
    env_file:
      - ${APP_ENV_FILE:-/dev/null}
    stop_grace_period: 10s

  proxy:
    image: ${PROXY_IMAGE:-nginx:1.27-alpine}
    ports:
      - "${PUBLIC_PORT:-8080}:80"
    volumes:
      - ./proxy/default.conf:/etc/nginx/conf.d/default.conf:ro
      - proxy-upstream:/etc/nginx/upstream
    depends_on:
      - app
    command: ["sh", "-c", "[ -s /etc/nginx/upstream/app.conf ] || echo 'server app:8000;' > /etc/nginx/upstream/app.conf; exec nginx -g 'daemon off;'"]

volumes:
  proxy-upstream:
""",
}


def make_reference(where: Path) -> Project:
    project = make_project(where)
    releases.slow_boot(project, 2)
    return project


def make_small(where: Path) -> Project:
    toolkit = [f for f in repo_files() if f.startswith(("droplet_deploy/", "proxy/")) or f in ("tasks.py", ".gitignore")]
    project = make_project(where, files=toolkit)
    for relative, text in SMALL_FILES.items():
        project.write(relative, text)
    project.commit("the small app")
    project.configure(check_endpoints=["/", "/api/health"],
                      environments={"test": {"compose_file": "docker-compose.yml"}})
    return project


@dataclass(frozen=True)
class App:
    name: str
    boot: float
    make: Callable[[Path], Project]
    compose_file: str
    run_args: tuple[str, ...]  # what `docker run` needs to start it the way its compose file does


APPS = {
    "reference": App("reference", 2.0, make_reference, "docker-compose.test.yml", REFERENCE_RUN_ARGS),
    "small": App("small", SMALL_BOOT, make_small, "docker-compose.yml", ()),
}

# --- one deploy, timed ------------------------------------------------------------------------------------


@dataclass
class Deploy:
    wall: float
    report: Report
    steps: dict[str, float]
    sessions: int = 0  # over SSH: command sessions the sshd started
    logins: int = 0


@dataclass
class Place:
    """One clone of one app, deployed by one toolkit version, in one place."""

    label: str
    project: Project
    deploy_args: tuple[str, ...]
    sshd: SshdHandle | None = None
    runs: list[Deploy] = field(default_factory=list)
    commands: collections.Counter = field(default_factory=collections.Counter)
    list_time: tuple[float, float] | None = None  # `inv --list`: median wall, median CPU

    failures: list[str] = field(default_factory=list)  # deploys that exited non-zero: their error line

    def inv(self, *, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        return self.project.inv(*self.deploy_args, timeout=RUN_LIMIT, check=check, **env)

    def measure(self, rate: float) -> Deploy:
        releases.one_line_change(self.project, f"{self.label} release {len(self.runs) + 1}")
        log_offset = self.sshd.log.stat().st_size if self.sshd else 0
        with Load(f"{self.project.url}/api/health", rate=rate, max_seconds=RUN_LIMIT) as load:
            started = time.monotonic()
            result = self.inv(check=False)
            wall = time.monotonic() - started
            load.wait(SETTLE)
        if result.returncode != 0:
            # A failed deploy on a busy machine is a result too (it left the release before serving): counted,
            # kept out of the medians.
            error = next((line for line in reversed(result.stderr.splitlines()) if line.startswith("error:")), "?")
            self.failures.append(error[:160])
            say(f"{self.label}: the deploy failed after {wall:.2f}s: {error[:160]}")
            return Deploy(wall, load.report(), {})
        deploy = Deploy(wall, load.report(), parse_steps(result.stdout))
        if self.sshd:
            with self.sshd.log.open("rb") as log:
                log.seek(log_offset)
                text = log.read().decode(errors="replace")
            deploy.sessions = text.count("Starting session: command")
            deploy.logins = text.count("Accepted publickey")
        self.runs.append(deploy)
        say(f"{self.label}: {wall:.2f}s, {deploy.report.describe(limit=3)}")
        return deploy

    def count_commands(self, shim_dir: Path, tmp: Path) -> None:
        """One extra deploy, not timed, with every docker and git going through the logging shim."""
        releases.one_line_change(self.project, f"{self.label} counted release")
        log = tmp / f"{self.project.name}-commands.log"
        self.inv(BENCH_COMMAND_LOG=str(log), PATH=f"{shim_dir}:{self.project.env()['PATH']}")
        self.commands = collections.Counter(line.split()[0] for line in log.read_text().splitlines() if line.strip())


def parse_steps(stdout: str) -> dict[str, float]:
    for line in reversed(stdout.splitlines()):
        match = SUMMARY_RE.match(line)
        if match:
            return {m["name"]: float(m["seconds"]) for m in STEP_RE.finditer(match["steps"])}
    return {}


# --- the floors -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Floor:
    parts: dict[str, float]  # phase -> seconds, in order

    @property
    def total(self) -> float:
        return sum(self.parts.values())


def local_floor(project: Project, app: App) -> Floor:
    build, start, boot = raw_floor(project, app.run_args)
    return Floor({"build": build, "start": start, "boot": boot})


FLOOR_SCRIPT = """set -e
now() { date +%s.%N; }
mkdir -p "$1" && tar -x -C "$1"
echo "uploaded $(now)"
cd "$1"
BUILD >/dev/null
echo "built $(now)"
cid="$(RUN)"
echo "started $(now)"
ip="$(docker inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$cid")"
until curl -fsS --max-time 2 "http://$ip:8000/api/health" 2>/dev/null | grep -q "$2"; do sleep 0.05; done
echo "healthy $(now)"
docker rm --force "$cid" >/dev/null
rm -rf "$1"
"""


def ssh_floor(project: Project, app: App, sshd: SshdHandle, host_dir: Path) -> Floor:
    """Upload + build + start + boot on the host, in one SSH session, the way a hand-written deploy would."""
    revision = releases.one_line_change(project, "ssh floor release")
    image = f"{project.name}:floor"
    script = (FLOOR_SCRIPT.replace("BUILD", shlex.join(build_argv(project, image, revision, no_cache=False)))
              .replace("RUN", shlex.join(["docker", "run", "--detach", *app.run_args, "--name",
                                           f"{project.name}-floor", image])))
    remote = shlex.join(["sh", "-c", script, "floor", str(host_dir / f"floor-{revision[:12]}"), revision])
    archive = subprocess.run(["git", "archive", "--format=tar", revision], cwd=project.path,  # noqa: S603
                             capture_output=True, check=True).stdout
    started = time.monotonic()
    with subprocess.Popen(["ssh", "-F", str(sshd.ssh_config), sshd.alias, remote],  # noqa: S603 - argv built here
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        proc.stdin.write(archive)
        proc.stdin.close()
        marks: dict[str, float] = {}
        for raw in proc.stdout:
            word, _, stamp = raw.decode().partition(" ")
            marks[word] = float(stamp)
            if word == "uploaded":
                uploaded = time.monotonic() - started
            if word == "healthy":
                total = time.monotonic() - started
        proc.wait(timeout=RUN_LIMIT)
        if proc.returncode != 0 or "healthy" not in marks:
            raise SystemExit(f"bench: the ssh floor failed ({proc.returncode}): {proc.stderr.read().decode()[-300:]}")
    build, start = marks["built"] - marks["uploaded"], marks["started"] - marks["built"]
    return Floor({"upload": uploaded, "build": build, "start": start, "boot": total - uploaded - build - start})


# --- the run ----------------------------------------------------------------------------------------------


def open_place(app: App, where: str, version: str, tmp: Path, sshd: SshdHandle | None) -> Place:
    directory = tmp / f"{app.name}-{where}-{version.replace('/', '_')}"
    directory.mkdir()
    project = app.make(directory)
    if version != "WORKTREE":
        _checkout(project.path, version)
    label = f"{app.name} {where} {'after' if version == 'WORKTREE' else f'before ({version})'}"
    if where == "local":
        return Place(label, project, ("deploy.test",))
    configure_prod(project, sshd, directory)
    project.configure(environments={"prod": {"compose_file": app.compose_file}})
    return Place(label, project, ("deploy.prod", "--host", "prod", "--skip-backup"), sshd)


def open_peer(app: App, where: str, tmp: Path, script: str | None) -> DockerRollout | None:
    """docker-rollout beside ours, locally (it runs compose on this engine; it has no SSH mode)."""
    if not script or where != "local":
        return None
    directory = tmp / f"{app.name}-docker-rollout"
    directory.mkdir()
    return DockerRollout(app.make(directory), app.compose_file, Path(script))


def bench_app(app: App, where: str, versions: list[str], args, tmp: Path, shim_dir: Path,
              sshd: SshdHandle | None) -> tuple[list[Floor], dict[str, Place], DockerRollout | None]:
    places = {v: open_place(app, where, v, tmp, sshd) for v in versions}
    peer = open_peer(app, where, tmp, args.docker_rollout)
    floors: list[Floor] = []
    try:
        if peer:
            say(f"docker-rollout {app.name}: first deploy (not measured)")
            peer.first()
        for place in places.values():
            say(f"{place.label}: first deploy (not measured)")
            place.inv()
            if where == "local":
                place.count_commands(shim_dir, tmp)
        floor_project = places[versions[-1]].project
        if where == "local":
            for place in places.values():
                place.list_time = list_time(place.project)
        for number in range(args.runs):
            say(f"{app.name} {where}: floor run {number + 1}")
            floors.append(local_floor(floor_project, app) if where == "local"
                          else ssh_floor(floor_project, app, sshd, tmp / f"{app.name}-host"))
            for place in places.values():
                place.measure(args.rate)
            if peer:
                peer.measure(args.rate)
    finally:
        if peer:
            peer.remove()
            remove_project_resources(peer.project.name)
        for place in places.values():
            remove_project_resources(place.project.name)
    return floors, places, peer


def list_time(project: Project, runs: int = 10) -> tuple[float, float]:
    """`inv --list` in the project: (median wall, median CPU) seconds over ``runs``, after one run that writes
    the bytecode cache. CPU time (user + sys) is what the wall time is on an idle machine."""
    walls, cpus = [], []
    argv = [str(VENV_BIN / "inv"), "--list"]
    subprocess.run(argv, cwd=project.path, env=project.env(), capture_output=True, check=True)  # noqa: S603
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        subprocess.run(argv, cwd=project.path, env=project.env(), capture_output=True, check=True)  # noqa: S603
        walls.append(time.monotonic() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def floor_row(floors: list[Floor]) -> tuple[str, float]:
    phases = list(floors[0].parts)
    parts = " + ".join(f"{p} {median([f.parts[p] for f in floors]):.2f}" for p in phases)
    return parts, median([f.total for f in floors])


def net_of_build(floors: list[Floor], places: dict[str, Place], peer: DockerRollout | None) -> str:
    """Each flow's wall time less its own build in the same run: a cached build of the same change varies by
    seconds from run to run here, and this leaves out what all flows share. Over SSH the floor keeps its upload,
    ours its release step."""
    base = median([f.total - f.parts["build"] for f in floors])
    shown = [f"floor {base:.2f} s"]
    for version, place in places.items():
        net = median([d.wall - d.steps.get("build", 0.0) for d in place.runs])
        shown.append(f"{'after' if version == 'WORKTREE' else f'before ({version})'} {net:.2f} s "
                     f"({net - base:+.2f} s)")
    if peer and peer.walls:
        net = median([wall - built for wall, built in zip(peer.walls, peer.builds, strict=False)])
        shown.append(f"docker-rollout {net:.2f} s ({net - base:+.2f} s)")
    return "- net of each run's own build (medians): " + ", ".join(shown)


def table(app: App, where: str, floors: list[Floor], places: dict[str, Place], rate: float,
          peer: DockerRollout | None = None) -> list[str]:
    parts, floor = floor_row(floors)
    command = "inv deploy.test" if where == "local" else "inv deploy.prod --host prod --skip-backup"
    what = ("cached `docker build` + `docker run` + first healthy answer" if where == "local"
            else "upload + cached `docker build` + `docker run` + first healthy answer, on the host")
    lines = [f"### {app.name} app (boot {app.boot:g} s), {where}: medians of {len(floors)} runs", "",
             f"| flow | wall | failed requests at {rate:g}/s | commands |", "|---|---|---|---|",
             f"| raw floor: {what} ({parts}) | {floor:.2f} s | (none running) | |"]
    for version, place in places.items():
        wall = median([d.wall for d in place.runs])
        name = f"`{command}`" + ("" if len(places) == 1 else
                                  f" {'before' if version != 'WORKTREE' else 'after'} ({version if version != 'WORKTREE' else 'work tree'})")
        failed = sum(d.report.failed for d in place.runs)
        sent = sum(d.report.requests for d in place.runs)
        versus = f"floor {wall - floor:+.2f} s, {wall / floor:.2f}x"
        if where == "local":
            commands = ", ".join(f"{n} {k}" for k, n in sorted(place.commands.items()))
        else:
            sessions = median([d.sessions for d in place.runs])
            logins = max(d.logins for d in place.runs)
            commands = f"{sessions:g} over {logins} SSH login(s)"
        lines.append(f"| {name} | {wall:.2f} s ({versus}) | {failed} of {sent} | {commands} |")
        for error in place.failures:
            lines.append(f"  ({name}: a deploy failed and is not in the median: {error})")
    if peer and peer.walls:
        wall = median(peer.walls)
        failed = sum(r.failed for r in peer.reports)
        sent = sum(r.requests for r in peer.reports)
        lines.append(f"| docker-rollout v0.13: `docker build` + `docker rollout app` (health check every 1 s, "
                     f"proxy resolving per request) | {wall:.2f} s (floor {wall - floor:+.2f} s, "
                     f"{wall / floor:.2f}x) | {failed} of {sent} | |")
        if peer.restarted:
            lines.append(f"  (docker-rollout's app had to be started again {peer.restarted} time(s) before a run: "
                         "something outside the benchmark had stopped it)")
    lines += ["", net_of_build(floors, places, peer)]
    for version, place in places.items():
        steps = {s: median([d.steps.get(s, 0.0) for d in place.runs]) for s in STEPS}
        accounted = sum(steps.values())
        wall = median([d.wall for d in place.runs])
        listed = (f"; `inv --list` {place.list_time[0]:.2f} s wall, {place.list_time[1]:.2f} s CPU"
                  if place.list_time else "")
        lines.append(f"- {f'before ({version})' if version != 'WORKTREE' else 'after'}: "
                     + ", ".join(f"{s} {v:.2f}" for s, v in steps.items())
                     + f"; outside the steps (start-up, lock, release, history, exit) {wall - accounted:.2f}"
                     + listed)
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each flow; medians are shown (default 3)")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second during our deploys (default 20)")
    parser.add_argument("--before", help="also deploy with the toolkit at this git revision (droplet_deploy/ and "
                                         "tasks.py); several, comma-separated, each beside the others")
    parser.add_argument("--apps", default="reference,small", help="comma-separated: reference, small")
    parser.add_argument("--where", default="local,ssh", help="comma-separated: local, ssh")
    parser.add_argument("--docker-rollout", metavar="SCRIPT",
                        help="path of wowu/docker-rollout v0.13's `docker-rollout` script: also release each app "
                             "locally with it, on the same change and load (bench/peer.py)")
    args = parser.parse_args(argv)
    apps = [APPS[name] for name in args.apps.split(",")]
    places = [w for w in args.where.split(",") if w]
    if not set(places) <= {"local", "ssh"} or args.runs < 1 or not 1 <= args.rate <= 200:
        parser.error("--where takes local and/or ssh; --runs at least 1; --rate between 1 and 200")
    versions = (args.before.split(",") if args.before else []) + ["WORKTREE"]
    # Python writes bytecode by default, so a user's second `inv` does not compile the toolkit again; an
    # environment that turns that off (PYTHONDONTWRITEBYTECODE) would add the compile to every measured run.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

    print(f"bench/speed.py --runs {args.runs} --rate {args.rate:g}" + (f" --before {args.before}" if args.before else "")
          + (" --docker-rollout SCRIPT" if args.docker_rollout else "") + "\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp_name:
        tmp = Path(tmp_name)
        shim_dir = shims(tmp / "shims")
        with running_sshd(tmp / "sshd") as sshd:
            for app in apps:
                for where in places:
                    floors, done, peer = bench_app(app, where, versions, args, tmp, shim_dir, sshd)
                    # Printed as each part ends: a later part that fails on a busy machine loses only itself.
                    print("\n".join(table(app, where, floors, done, args.rate, peer)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
