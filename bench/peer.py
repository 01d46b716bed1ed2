"""docker-rollout (wowu/docker-rollout), the zero-downtime tool a compose user would pick instead, on the same app,
the same one-line change and the same load as ours, for bench/speed.py.

Its code is not part of this repository: the benchmark takes the path of its script (v0.13, a POSIX shell
script; fetch it from github.com/wowu/docker-rollout at that tag) and runs it as ``sh <script> rollout ...``,
which is what the ``docker rollout`` CLI plugin does. Its flow for a release: build the image, then
``docker compose up --scale app=2 --no-recreate`` (one new container beside the old one), wait until Docker's
health check says the new one is healthy (it polls every second), ``docker stop`` + ``docker rm`` the old one.

What it needs around it, given as favourably as the app allows: a proxy that resolves the service name on every
request (the same nginx image, ``resolver 127.0.0.11 valid=1s``, retrying the next address on a connection error)
so the new container gets traffic and the stopped one none; and a Docker health check on /api/health every 1 s
(its own poll interval; the reference app's compose file checks every 5 s, the small one has none, which would
make docker-rollout wait a fixed 10 s).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench.rollout import RUN_LIMIT, SETTLE, build_argv, run, say, wait_revision
from tests.conftest import BASE_IMAGE, PROXY_IMAGE, Project, free_port
from tests.support import releases
from tests.support.load import Load, Report

PROXY_CONF = """server {
    listen 80 default_server;
    resolver 127.0.0.11 valid=1s ipv6=off;
    location / {
        set $app http://app:8000;
        proxy_pass $app;
        proxy_next_upstream error timeout;
        proxy_connect_timeout 2s;
    }
}
"""

OVERRIDE = """services:
  app:
    healthcheck:
      test: ["CMD", "python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/health', timeout=2)"]
      interval: 1s
      timeout: 2s
      retries: 3
  proxy:
    command: ["nginx", "-g", "daemon off;"]
    volumes:
      - ./bench-rollout-proxy.conf:/etc/nginx/conf.d/default.conf:ro
"""


class DockerRollout:
    """One clone of one app, run by plain compose and released by docker-rollout."""

    def __init__(self, project: Project, compose_file: str, script: Path):
        self.project = project
        self.script = script
        self.compose_file = compose_file
        self.name = f"{project.name}-peer"
        self.port = free_port()
        self.walls: list[float] = []
        self.builds: list[float] = []
        self.restarted = 0  # times the release before had to be started again before a measurement
        self.image = ""
        self.reports: list[Report] = []
        project.write("bench-rollout-proxy.conf", PROXY_CONF)
        project.write("bench-rollout.yml", OVERRIDE)

    def _env(self, image: str) -> dict[str, str]:
        return self.project.env(APP_IMAGE=image, PROXY_IMAGE=PROXY_IMAGE, PUBLIC_PORT=str(self.port),
                                BASE_IMAGE=BASE_IMAGE)

    def _files(self) -> list[str]:
        return ["-f", self.compose_file, "-f", "bench-rollout.yml", "-p", self.name]

    def _build(self) -> tuple[str, str]:
        revision = self.project.head()
        image = f"{self.project.name}:{revision[:12]}"
        run(build_argv(self.project, image, revision, no_cache=False), cwd=self.project.path)
        self.image = image
        return image, revision

    def first(self) -> None:
        image, revision = self._build()
        run(["docker", "compose", *self._files(), "up", "--detach", "--wait"], cwd=self.project.path,
            env=self._env(image))
        wait_revision(f"http://127.0.0.1:{self.port}/api/health", revision, interval=0.1, limit=120)

    def measure(self, rate: float) -> float:
        # The release before must be serving when the measurement starts (a shared engine is a busy place):
        # a no-op when it runs, and not timed.
        running = run(["docker", "compose", *self._files(), "ps", "--quiet", "app"], cwd=self.project.path,
                      env=self._env("none")).stdout.split()
        if len(running) != 1:
            say(f"docker-rollout {self.name}: {len(running)} app containers before the release instead of 1 "
                "(something outside the benchmark changed the project): started again, not timed")
            self.restarted += 1
            run(["docker", "compose", *self._files(), "up", "--detach", "--wait"], cwd=self.project.path,
                env=self._env(self.image))
        # ... and answer through its proxy: the first run here once met the proxy unable to resolve `app` for a
        # while before docker-rollout had changed anything, which would count against it.
        wait_revision(f"http://127.0.0.1:{self.port}/api/health", self.project.head(), interval=0.1, limit=60)
        releases.one_line_change(self.project, f"docker-rollout release {len(self.walls) + 1}")
        with Load(f"http://127.0.0.1:{self.port}/api/health", rate=rate, max_seconds=RUN_LIMIT) as load:
            started = time.monotonic()
            image, revision = self._build()
            built = time.monotonic() - started
            result = subprocess.run(["sh", str(self.script), "rollout", *self._files(), "app"],  # noqa: S603
                                    cwd=self.project.path, env=self._env(image), capture_output=True, text=True,
                                    timeout=RUN_LIMIT)
            wall = time.monotonic() - started
            load.wait(SETTLE)
        if result.returncode != 0:
            raise SystemExit(f"bench: docker-rollout failed: {(result.stdout + result.stderr)[-400:]}")
        report = load.report()
        if report.last_revision() != revision:
            raise SystemExit(f"bench: after docker-rollout the app serves {report.last_revision()}, not {revision[:12]}")
        self.walls.append(wall)
        self.builds.append(built)
        self.reports.append(report)
        say(f"docker-rollout {self.project.name}: {wall:.2f}s (build {built:.2f}s), {report.describe(limit=3)}")
        return wall

    def remove(self) -> None:
        run(["docker", "compose", *self._files(), "down", "--volumes", "--timeout", "1"], cwd=self.project.path,
            env=self._env("none"), check=False)
