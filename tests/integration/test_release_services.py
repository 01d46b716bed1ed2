"""Every service built from this repository is on the release: a worker on the app's image and a frontend with a
Dockerfile of its own are built at the revision, verified, recreated after the switch and proven by their labels
(the frontend by its health check too); a change to the frontend alone deploys with 0 failed requests on the
public port; a broken frontend build and a frontend image that fails verify leave every container as it was; a
rollback brings every service back; deploy.status names a worker left on another revision.

Real Docker and Compose, the `inv` command as users run it; one stack for the whole story (each deploy costs).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import PROXY_IMAGE
from tests.integration.test_remote import configure_prod
from tests.support import stack
from tests.support.load import Load

pytestmark = pytest.mark.integration

RATE = 20
SETTLE = 1.5


def every_container(project) -> dict[str, set[str]]:
    return {service: set(project.containers(service=service)) for service in ("app", "worker", "frontend", "proxy")}


def test_a_worker_and_a_frontend_follow_the_release_and_a_rollback(project):
    first = stack.add_worker_and_frontend(project, PROXY_IMAGE, "frontend v1")
    deployed = project.inv("deploy.test")
    assert f"==> build frontend: {project.name}-frontend:{first[:12]}" in deployed.stdout
    assert f"==> verify.build frontend: {project.name}-frontend:{first[:12]}" in deployed.stdout
    assert project.health()["revision"] == first
    assert stack.revisions(project, "worker") == {first}
    assert stack.revisions(project, "frontend") == {first}
    assert stack.frontend_page(project) == "frontend v1"

    # A commit that changes only the frontend, under load on the public port.
    project.write("frontend/index.html", "frontend v2\n")
    second = project.commit("the frontend's page only")
    with Load(project.url + "/api/health", rate=RATE, max_seconds=300) as load:
        result, report = load.during(lambda: project.inv("deploy.test"), SETTLE)
    assert report.failed == 0, report.describe()
    assert f"recreating frontend at {second[:12]}" in result.stdout
    assert stack.frontend_page(project) == "frontend v2"
    (front,) = stack.containers(project, "frontend")
    assert (front["revision"], front["image"], front["health"]) == (second, f"{project.name}-frontend:{second[:12]}",
                                                                   "healthy")
    assert stack.revisions(project, "worker") == {second} and project.health()["revision"] == second
    running = every_container(project)

    # A frontend that does not build: nothing running changes.
    dockerfile = project.path / "frontend" / "Dockerfile"
    good = dockerfile.read_text()
    dockerfile.write_text(good.replace("USER 65534:65534", "RUN exit 7\nUSER 65534:65534"))
    project.commit("a frontend that does not build")
    failed = project.inv("deploy.test", check=False)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert every_container(project) == running

    # A frontend image that fails verify (it runs as root): named, and nothing running changes.
    dockerfile.write_text(good.replace("USER 65534:65534", "USER 0"))
    project.commit("a frontend that runs as root")
    failed = project.inv("deploy.test", check=False)
    assert failed.returncode == 1
    assert f"verify.build: service frontend ({project.name}-frontend:" in failed.stderr
    assert "non-root user" in failed.stderr
    assert every_container(project) == running
    assert stack.frontend_page(project) == "frontend v2"

    # The rollback brings the app, the worker and the frontend back to the first release.
    with Load(project.url + "/api/health", rate=RATE, max_seconds=300) as load:
        _, report = load.during(lambda: project.inv("deploy.rollback"), SETTLE)
    assert report.failed == 0, report.describe()
    assert project.health()["revision"] == first
    assert stack.revisions(project, "worker") == {first}
    assert stack.revisions(project, "frontend") == {first}
    assert stack.frontend_page(project) == "frontend v1"

    status = json.loads(project.inv("deploy.status", "--json").stdout)
    assert status["services"]["worker"] == first and status["services"]["frontend"] == first
    assert status["behind"] == []

    # A worker started by hand from the newer image is named by status.
    labels = [f"com.docker.compose.project={project.compose_project()}", "com.docker.compose.service=worker",
              "com.docker.compose.oneoff=False", "com.docker.compose.container-number=9"]
    subprocess.run(["docker", "run", "-d", "--name", f"{project.name}-by-hand",
                    *(arg for label in labels for arg in ("--label", label)),
                    f"{project.name}:{second[:12]}", "python3", "-c", "import time; time.sleep(600)"],
                   check=True, capture_output=True)
    shown = project.inv("deploy.status").stdout
    assert f"warning: worker ({project.name}-by-hand) runs revision {second[:12]}, the app {first[:12]}" in shown
    status = json.loads(project.inv("deploy.status", "--json").stdout)
    assert status["behind"] == [{"service": "worker", "name": f"{project.name}-by-hand", "revision": second}]

    # deploy.clean beside another project's images and containers: theirs untouched, ours beyond retention gone.
    subprocess.run(["docker", "rm", "-f", f"{project.name}-by-hand"], check=True, capture_output=True)
    other_image = f"{project.name}other:1"
    subprocess.run(["docker", "tag", f"{project.name}:{first[:12]}", other_image], check=True)
    made = {}
    for who, compose_project in (("other", f"{project.name}other-test"), ("ours", project.compose_project())):
        made[who] = subprocess.run(
            ["docker", "create", "--name", f"{project.name}-{who}-stopped", "--label",
             f"com.docker.compose.project={compose_project}", "--label", "com.docker.compose.service=worker",
             "--label", "com.docker.compose.oneoff=False", other_image, "true"],
            check=True, capture_output=True, text=True).stdout.strip()
    project.configure(keep_images=1)
    ours = set(image_refs(project.name))
    dry = project.inv("deploy.clean", "--dry").stdout
    assert "would free" in dry and f"would remove stopped container {project.name}-ours-stopped" in dry
    assert set(image_refs(project.name)) == ours, "--dry removes nothing"
    cleaned = project.inv("deploy.clean").stdout
    assert "freed" in cleaned and " bytes;" in cleaned
    left = set(image_refs(project.name))
    assert left < ours and f"{project.name}:{first[:12]}" in left and f"{project.name}:{second[:12]}" in left
    assert f"{project.name}-frontend:{first[:12]}" in left and f"{project.name}-frontend:{second[:12]}" in left
    assert subprocess.run(["docker", "image", "inspect", other_image], capture_output=True).returncode == 0
    assert container_exists(made["other"]) and not container_exists(made["ours"])
    project.inv("deploy.rollback")
    assert project.health()["revision"] == second and stack.revisions(project, "frontend") == {second}


    # A volume only by name, never one in use, never another project's.
    volumes = {}
    for who, compose_project in (("other", f"{project.name}other-test"), ("ours", project.compose_project())):
        volumes[who] = f"{compose_project}_spare"
        subprocess.run(["docker", "volume", "create", "--label", f"com.docker.compose.project={compose_project}",
                        volumes[who]], check=True, capture_output=True)
    in_use = project.inv("deploy.clean", "--volume", "app-data", "--yes", check=False)
    assert in_use.returncode == 2 and "is mounted by" in in_use.stderr and "Traceback" not in in_use.stderr
    unknown = project.inv("deploy.clean", "--volume", "nope", "--yes", check=False)
    assert unknown.returncode == 2 and "is not a volume of" in unknown.stderr and "spare" in unknown.stderr
    asked = project.inv("deploy.clean", "--volume", "spare", check=False)
    assert asked.returncode == 2 and "no terminal to confirm on" in asked.stderr
    assert volume_exists(volumes["ours"])
    project.inv("deploy.clean", "--volume", "spare", "--yes")
    assert not volume_exists(volumes["ours"]) and volume_exists(volumes["other"])
    assert volume_exists(f"{project.compose_project()}_app-data")
    subprocess.run(["docker", "volume", "rm", volumes["other"]], capture_output=True)


def volume_exists(name: str) -> bool:
    return subprocess.run(["docker", "volume", "inspect", name], capture_output=True).returncode == 0


def image_refs(name: str) -> list[str]:
    found = []
    for reference in (name, f"{name}-*"):
        found += subprocess.run(["docker", "image", "ls", "--filter", f"reference={reference}", "--format",
                                 "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True, check=True).stdout.split()
    return found


def container_exists(container: str) -> bool:
    return subprocess.run(["docker", "inspect", container], capture_output=True).returncode == 0


def test_over_ssh_the_frontend_and_the_worker_are_built_on_the_host_at_the_revision(project, sshd, tmp_path):
    """The same on a host (the test sshd): the frontend's context ships with the release and is built there."""
    prod = configure_prod(project, sshd, tmp_path)
    project.configure(environments={"prod": {"compose_file": "docker-compose.test.yml"}})
    head = stack.add_worker_and_frontend(project, PROXY_IMAGE, "frontend on the host")
    result = prod.deploy()
    assert f"==> verify.build frontend: {project.name}-frontend:{head[:12]}" in result.stdout
    assert project.health()["revision"] == head
    assert stack.revisions(project, "worker", env="prod") == {head}
    assert stack.revisions(project, "frontend", env="prod") == {head}
    assert stack.frontend_page(project, env="prod") == "frontend on the host"
