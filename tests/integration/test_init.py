"""`inv init` in a copy of an existing app's repository, run as a new user runs it: before the repository has a
tasks.py, through `droplet-deploy init`; then the toolkit's own dry run accepts what it wrote."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.conftest import (
    BASE_IMAGE,
    PROXY_IMAGE,
    REPO,
    VENV_BIN,
    Project,
    free_port,
    git,
    remove_project_resources,
)

pytestmark = pytest.mark.integration

COMPOSE = """\
services:
  web:
    build: .
    container_name: shop
    ports:
      - "8000:8000"
    env_file: [config/development.env]
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://127.0.0.1:8000/api/health"]
"""


@pytest.fixture
def app_repo(tmp_path):
    """The reference app as someone else's repository: its code, Dockerfile and a compose file of its own."""
    name = f"dt{uuid.uuid4().hex[:8]}"
    path = tmp_path / name
    path.mkdir()
    for item in ("app", "config"):
        shutil.copytree(REPO / item, path / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for item in ("Dockerfile", ".dockerignore"):
        shutil.copy2(REPO / item, path / item)
    (path / "docker-compose.yml").write_text(COMPOSE)
    project = Project(path, name, free_port(), tmp_path / "invoke-runtime.yaml")
    # What this machine needs (offline base images) and a free port: the rest comes from init's invoke.yaml.
    project.configure(build_args={"BASE_IMAGE": BASE_IMAGE}, proxy_image=PROXY_IMAGE,
                      environments={"test": {"project": f"{name}-test", "public_port": project.port}})
    yield project
    remove_project_resources(name)


def init(project: Project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "droplet-deploy"), "init", *args], cwd=project.path, env=project.env(),
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_init_writes_a_config_the_dry_run_accepts_and_is_idempotent(app_repo):
    outside = init(app_repo)
    assert outside.returncode == 2
    assert outside.stderr.strip().splitlines() == [
        f"error: {app_repo.path} is not in a git repository (deploys ship commits: `git init`, commit the app, "
        "then run init again)"]
    assert not (app_repo.path / "invoke.yaml").exists()

    git(app_repo.path, "init", "-q", "-b", "main")
    app_repo.commit("the app as it was")
    first = init(app_repo)
    assert first.returncode == 0, first.stderr
    assert "wrote invoke.yaml" in first.stdout and "wrote tasks.py" in first.stdout
    assert "app service web (port 8000) in docker-compose.yml" in first.stdout
    assert "GET /api/health must answer 2xx once the app is up" in first.stdout
    written = {name: (app_repo.path / name).read_text() for name in ("invoke.yaml", "tasks.py", ".gitignore")}

    again = app_repo.inv("init")  # tasks.py exists now: the task is in the project's own collection
    assert "everything is in place" in again.stdout and "wrote" not in again.stdout
    assert {name: (app_repo.path / name).read_text() for name in written} == written

    app_repo.commit("deploy settings from inv init")
    dry = app_repo.inv("--dry", "deploy.test")
    assert "PASS  compose shape" in dry.stdout and "proxy service added" in dry.stdout
    assert f"--file {app_repo.path}/.deploy/test/compose.override.yml up --detach" in dry.stderr
    assert f"planned {app_repo.head()[:12]} to test" in dry.stdout
    assert app_repo.containers(service="web") == [], "a dry run starts nothing"


def test_an_ambiguous_app_service_asks_for_service(app_repo):
    (app_repo.path / "docker-compose.yml").write_text(COMPOSE + "  worker:\n    build: .\n")
    git(app_repo.path, "init", "-q", "-b", "main")
    app_repo.commit("two services built here")
    asked = init(app_repo)
    assert asked.returncode == 2 and "Traceback" not in asked.stderr
    assert "more than one service could be the app (web, worker)" in asked.stderr
    assert "pass --service NAME" in asked.stderr
    assert not (app_repo.path / "invoke.yaml").exists()
    chosen = init(app_repo, "--service", "web")
    assert chosen.returncode == 0 and "app service web" in chosen.stdout
