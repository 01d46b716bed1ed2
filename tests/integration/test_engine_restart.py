"""The droplet rebooted: its engine restarts, the site comes back by itself at the last deployed revision, and the
next deploy works.

This machine's engine is shared and is never restarted: the droplet is a second engine in a container
(tests/support/swarm.py's node image), rebooted with ``docker restart``. The deploy is the real ``inv deploy.test``
run as it runs on a droplet: its docker CLI talks to that engine (DOCKER_HOST, its socket through a bind mount) and
the process sits in the droplet's network namespace (``nsenter --net``), so the toolkit's 127.0.0.1 and the
containers' addresses are the droplet's own. The test reaches the site on the droplet's address, where the
compose file publishes the port (on every interface, as written).
"""

from __future__ import annotations

import subprocess
import time

import pytest
import requests

from tests.conftest import BASE_IMAGE, PROXY_IMAGE, VENV_BIN, Project
from tests.support import swarm

pytestmark = pytest.mark.integration

BACK_WITHIN = 120  # seconds the site has to answer again once the engine runs
DEPLOY_WITHIN = 300


@pytest.fixture
def droplet(project):
    # The compose file bind-mounts the proxy's config from the project: the droplet sees it where it is here.
    with swarm.droplet(str(project.path)) as node:
        if isinstance(node, str):
            pytest.skip(node)  # a failure in CI (tests/conftest.py)
        node.load(BASE_IMAGE, PROXY_IMAGE)
        yield node


def own_proxy(project: Project) -> None:
    """The stack as production runs it: app and proxy restart with the engine unless someone stopped them."""
    text = (project.path / "docker-compose.test.yml").read_text()
    for service in ("app", "proxy"):
        text = text.replace(f"\n  {service}:\n", f"\n  {service}:\n    restart: unless-stopped\n", 1)
    project.write("docker-compose.test.yml", text)


# A file written for `docker compose up`: the app publishes the port itself, there is no proxy (the toolkit's
# override adds one, with the app's restart policy and its nginx config inside the override), and a worker.
PLAIN = """\
services:
  app:
    image: ${APP_IMAGE:-deploy-demo:latest}
    restart: unless-stopped
    ports: ["${PUBLIC_PORT:-8001}:8000"]
    env_file: [config/development.env]
    environment:
      APP_ENV: test
  worker:
    image: ${APP_IMAGE:-deploy-demo:latest}
    restart: unless-stopped
    # The app image's HEALTHCHECK probes a web server a worker does not run (docs: workers on the app's image).
    healthcheck: {disable: true}
    # As a worker does, it stops on SIGTERM (as PID 1 it would otherwise wait out the stop timeout).
    command: ["python3", "-c", "import signal, time; signal.signal(signal.SIGTERM, lambda *_: exit(0)); time.sleep(10**9)"]
"""


def proxy_added(project: Project) -> None:
    project.write("docker-compose.test.yml", PLAIN)


def deploy(project: Project, node: swarm.Droplet) -> tuple[float, str]:
    started = time.monotonic()
    result = subprocess.run(node.argv(str(VENV_BIN / "inv"), "deploy.test"), cwd=project.path,
                            env=project.env(DOCKER_HOST=node.docker_host), capture_output=True, text=True,
                            timeout=DEPLOY_WITHIN, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"deploy exited {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return time.monotonic() - started, result.stdout


def served_revision(node: swarm.Droplet, project: Project) -> str | None:
    try:
        answer = requests.get(f"http://{node.address()}:{project.port}/api/health", timeout=2)
        return answer.json().get("revision") if answer.ok else None
    except (requests.RequestException, ValueError, RuntimeError, IndexError):
        return None


def containers(node: swarm.Droplet, project: Project, *, every: bool = False, service: str = "app") -> list[str]:
    out = subprocess.run(["docker", "ps", "-q", *(["-a"] if every else []), "--filter",
                          f"label=com.docker.compose.project={project.compose_project()}",
                          "--filter", f"label=com.docker.compose.service={service}"],
                         env={"DOCKER_HOST": node.docker_host, "PATH": "/usr/bin:/bin:/usr/local/bin"},
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()


@pytest.mark.parametrize("shape", [own_proxy, proxy_added], ids=["own-proxy", "proxy-added"])
def test_site_comes_back_after_the_engine_restarts_and_the_next_deploy_works(project, droplet, shape):
    shape(project)
    first = project.commit("restart with the engine")
    first_deploy, said = deploy(project, droplet)
    assert served_revision(droplet, project) == first
    shape_line = next(line for line in said.splitlines() if "compose shape" in line)
    assert "PASS" in shape_line and "after a reboot" not in shape_line  # preflight: the site comes back

    rebooted = time.monotonic()
    subprocess.run(["docker", "restart", "--time", "20", droplet.container], check=True, capture_output=True,
                   timeout=120)
    assert droplet.answers(), "the droplet's engine did not come back"
    engine_up = time.monotonic()
    deadline = engine_up + BACK_WITHIN
    revision = None
    while time.monotonic() < deadline:
        revision = served_revision(droplet, project)
        if revision == first:
            break
        time.sleep(0.25)
    back = time.monotonic()
    assert revision == first, f"{BACK_WITHIN}s after the engine restarted the site answers {revision!r}"
    assert len(containers(droplet, project)) == 1
    if shape is proxy_added:
        assert len(containers(droplet, project, service="worker")) == 1, "the worker did not come back"

    project.write("app/RESTART_NOTE", "a release after the reboot\n")
    second = project.commit("after the reboot")
    next_deploy, _ = deploy(project, droplet)
    assert served_revision(droplet, project) == second
    assert len(containers(droplet, project, every=True)) == 1

    print(f"\n{shape.__name__}: first deploy {first_deploy:.1f}s; engine restart to site back {back - rebooted:.1f}s "
          f"(engine answering to site back {back - engine_up:.1f}s); next deploy {next_deploy:.1f}s")
