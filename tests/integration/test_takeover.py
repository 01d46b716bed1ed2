"""Taking over a stack that runs today: started the usual way (`docker compose up -d` in its directory, so under
the directory's project name), its app publishing the port itself, its data in a named volume, a database service
beside it. Real engine, real compose, a real sshd; 20 requests/s through the public port the whole time."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import BASE_IMAGE, Project, make_project, remove_project_resources
from tests.integration.test_remote import configure_prod
from tests.support.load import Load, Report

pytestmark = pytest.mark.integration

# The seed's compose file, deployed until now by a script: `down`, `build --no-cache`, `up -d`.
SEED = """\
services:
  web:
    build:
      context: .
      args:
        BASE_IMAGE: {base_image}
    ports:
      - "{port}:8000"
    env_file:
      - config/development.env
    environment:
      APP_ENV: test
    volumes:
      - app-data:/data
    restart: unless-stopped
  db:
    image: {base_image}
    command: ["sleep", "infinity"]
    init: true
    volumes:
      - db-data:/var/lib/db

volumes:
  app-data:
  db-data:
"""

GAP = re.compile(r"port \d+ handed over to \S+: (\d+\.\d+)s from stopping")


@pytest.fixture
def seed(tmp_path) -> Iterator[Project]:
    """A project whose directory has the project's unique name: compose's default project name, as on a server."""
    project = make_project(tmp_path)
    moved = tmp_path / project.name
    shutil.move(project.path, moved)
    project.path = moved
    project.write("docker-compose.yml", SEED.format(base_image=BASE_IMAGE, port=project.port))
    project.commit("the compose file the script deployed")
    project.configure(app_service="web", environments={"test": {"compose_file": "docker-compose.yml"}})
    yield project
    remove_project_resources(project.name)
    subprocess.run(["docker", "image", "rm", "-f", f"{project.name}-web"], capture_output=True)


def docker(*argv: str, check: bool = True) -> str:
    return subprocess.run(["docker", *argv], capture_output=True, text=True, check=check).stdout.strip()


def start_the_seed_way(project: Project) -> str:
    """`docker compose up -d` in the project's directory; data written into the app's volume; the app's id."""
    subprocess.run(["docker", "compose", "up", "-d", "--build"], cwd=project.path, check=True, capture_output=True)
    app = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project.name}",
                 "--filter", "label=com.docker.compose.service=web")
    docker("exec", app, "sh", "-c", "echo orders-2025 > /data/marker")
    docker("exec", docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project.name}",
                          "--filter", "label=com.docker.compose.service=db"),
           "sh", "-c", "echo rows > /var/lib/db/marker")
    return app


def handed_line(result: subprocess.CompletedProcess) -> str:
    return next(line.strip() for line in (result.stdout + result.stderr).splitlines() if GAP.search(line))


def failing_for(report: Report) -> float:
    """From the first failed request sent to the last: how long the port gave no answer. (A request sent as the
    proxy binds can wait for its SYN to be sent again, a second later, and is answered: slow, not failed.)"""
    failures = report.failures
    return failures[-1].sent - failures[0].sent if failures else 0.0


def assert_gap_measured(gap: float, report: Report) -> None:
    """The gap the deploy printed is the one users saw. Its target, 1 s, is what bench/takeover.py reports on:
    on a shared engine under load the daemon's stop and start alone can take longer, which is no regression."""
    assert failing_for(report) <= gap + 0.3, (gap, report.describe())
    assert gap < 5.0, f"a gap of {gap:.2f}s: the handover waits for something it should not"


def volumes(prefix: str) -> set[str]:
    """This test's volumes (the engine is shared: others come and go meanwhile)."""
    return {v for v in docker("volume", "ls", "-q").split() if v.startswith(prefix)}


def web_containers(project_name: str) -> list[str]:
    return docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project_name}",
                  "--filter", "label=com.docker.compose.service=web").split()


def test_a_running_stack_is_taken_over_with_its_data_and_the_handover_gap_measured(seed, capsys):
    old = start_the_seed_way(seed)
    before = volumes(seed.name)

    # Under the toolkit's own project name the deploy would start on new, empty volumes: it stops first.
    refused = seed.inv("deploy.test", check=False)
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
    expected = f"set deploy.environments.test.project: {seed.name}"
    assert expected in refused.stderr, refused.stderr
    assert volumes(seed.name) == before, "no volume was created"
    assert web_containers(seed.name) == [old], "the running app was not touched"

    seed.configure(environments={"test": {"project": seed.name}})
    first = seed.head()
    with Load(seed.url + "/api/health", rate=20, max_seconds=400) as load:
        load.wait(1.0)
        result = seed.inv("deploy.test")
        load.wait(2.0)
    report = load.report()
    (gap,) = (float(g) for g in GAP.findall(result.stdout + result.stderr))
    with capsys.disabled():
        print(f"\n[measure] takeover under 20 req/s: {handed_line(result)}; failures over "
              f"{failing_for(report):.2f}s; {report.describe()}")
    assert "no answers on it until the proxy is up" in result.stdout + result.stderr, "announced before"
    assert seed.health()["revision"] == first
    (new,) = web_containers(seed.name)
    assert new != old
    assert docker("exec", new, "cat", "/data/marker") == "orders-2025", "the app kept its volume"
    (db,) = docker("ps", "-q", "--filter", f"label=com.docker.compose.project={seed.name}",
                   "--filter", "label=com.docker.compose.service=db").split()
    assert docker("exec", db, "cat", "/var/lib/db/marker") == "rows", "the database kept its volume"
    assert volumes(seed.name) == before, "every volume carried over; none was created"
    assert_gap_measured(gap, report)

    # Every later deploy switches inside the proxy: no gap at all.
    seed.write("app/taken_over.txt", "second release\n")
    second = seed.commit("second release")
    with Load(seed.url + "/api/health", rate=20, max_seconds=400) as later:
        later.wait(1.0)
        again = seed.inv("deploy.test")
        later.wait(2.0)
    assert "handed over" not in again.stdout + again.stderr
    assert later.report().failed == 0, later.report().describe()
    assert seed.health()["revision"] == second


def test_over_ssh_the_stack_on_the_host_is_taken_over(seed, sshd, tmp_path, capsys):
    old = start_the_seed_way(seed)
    prod = configure_prod(seed, sshd, tmp_path)
    prod.use(compose_file="docker-compose.yml")

    refused = prod.deploy(check=False)
    assert refused.returncode != 0
    assert f"set deploy.environments.prod.project: {seed.name}" in refused.stderr, refused.stderr
    assert web_containers(seed.name) == [old]

    prod.use(project=seed.name)
    with Load(seed.url + "/api/health", rate=20, max_seconds=400) as load:
        load.wait(1.0)
        result = prod.deploy()
        load.wait(2.0)
    report = load.report()
    (gap,) = (float(g) for g in GAP.findall(result.stdout + result.stderr))
    assert seed.health()["revision"] == seed.head()
    (new,) = web_containers(seed.name)
    assert docker("exec", new, "cat", "/data/marker") == "orders-2025"
    with capsys.disabled():
        print(f"\n[measure] takeover over SSH under 20 req/s: {handed_line(result)}; failures over "
              f"{failing_for(report):.2f}s; {report.describe()}")
    assert_gap_measured(gap, report)

    seed.write("app/taken_over.txt", "second release\n")
    second = seed.commit("second release")
    with Load(seed.url + "/api/health", rate=20, max_seconds=400) as later:
        later.wait(1.0)
        prod.deploy()
        later.wait(2.0)
    assert later.report().failed == 0, later.report().describe()
    assert seed.health()["revision"] == second
