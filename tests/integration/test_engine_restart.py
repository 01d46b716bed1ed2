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


def with_restart_policy(project: Project) -> None:
    """The stack as production runs it: both services restart with the engine unless someone stopped them."""
    text = (project.path / "docker-compose.test.yml").read_text()
    for service in ("app", "proxy"):
        text = text.replace(f"\n  {service}:\n", f"\n  {service}:\n    restart: unless-stopped\n", 1)
    project.write("docker-compose.test.yml", text)


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


def app_containers(node: swarm.Droplet, project: Project, *, every: bool = False) -> list[str]:
    out = subprocess.run(["docker", "ps", "-q", *(["-a"] if every else []), "--filter",
                          f"label=com.docker.compose.project={project.compose_project()}",
                          "--filter", "label=com.docker.compose.service=app"],
                         env={"DOCKER_HOST": node.docker_host, "PATH": "/usr/bin:/bin:/usr/local/bin"},
                         capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.split()


def test_site_comes_back_after_the_engine_restarts_and_the_next_deploy_works(project, droplet):
    with_restart_policy(project)
    first = project.commit("restart with the engine")
    first_deploy, said = deploy(project, droplet)
    assert served_revision(droplet, project) == first
    assert "deploys as written" in said and "after a reboot" not in said  # preflight: the site comes back

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
    assert len(app_containers(droplet, project)) == 1

    project.write("app/RESTART_NOTE", "a release after the reboot\n")
    second = project.commit("after the reboot")
    next_deploy, _ = deploy(project, droplet)
    assert served_revision(droplet, project) == second
    assert len(app_containers(droplet, project, every=True)) == 1

    print(f"\nfirst deploy {first_deploy:.1f}s; engine restart to site back {back - rebooted:.1f}s "
          f"(engine answering to site back {back - engine_up:.1f}s); next deploy {next_deploy:.1f}s")
