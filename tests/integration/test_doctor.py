"""`inv doctor` on a broken setup: every problem a deploy would stop on, one line each with its fix, a non-zero
exit, and nothing changed (no file written, no container, volume or image made). Real engine, real compose."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import PROXY_IMAGE

pytestmark = pytest.mark.integration

BROKEN_COMPOSE = """\
services:
  app:
    build: .
    network_mode: host
    volumes:
      - app-data:/data
volumes:
  app-data:
"""


def engine_state(name: str) -> list[str]:
    def out(*argv: str) -> list[str]:
        return sorted(subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout.split())
    return (out("docker", "ps", "-aq", "--filter", f"name={name}")
            + [v for v in out("docker", "volume", "ls", "-q") if v.startswith(name)]
            + out("docker", "image", "ls", "-q", name))


def git_status(project) -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=project.path, capture_output=True,
                          text=True, check=True).stdout


def test_a_broken_setup_names_every_problem_and_changes_nothing(project):
    project.write("docker-compose.test.yml", BROKEN_COMPOSE)
    project.write("Dockerfile", "FROM scratch\nCOPY . /srv\n")
    project.write(".dockerignore", "*.pyc\n")
    project.commit("a setup that cannot deploy")
    (project.path / ".env").write_text("SECRET_KEY=doctor-must-not-print-this\n")
    unrouted = "/" + "-".join(["no", "route", "here"])  # spelled out of pieces: the clone holds this file too
    project.configure(health_path=unrouted)
    # Something else holds the public port: a container no compose project made.
    squatter = subprocess.run(["docker", "run", "-d", "--name", f"{project.name}-squatter", "-p",
                               f"127.0.0.1:{project.port}:80", PROXY_IMAGE, "nginx", "-g", "daemon off;"],
                              capture_output=True, text=True, check=True).stdout.strip()
    before_files = sorted(p.relative_to(project.path).as_posix() for p in project.path.rglob("*")
                          if ".git/" not in p.as_posix())
    before_engine = engine_state(project.name)
    before_git = git_status(project)

    result = project.inv("doctor", check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stdout.splitlines()

    def line_of(name: str) -> str:
        found = [line for line in lines if f"  {name} " in line]
        assert len(found) == 1, (name, result.stdout)
        return found[0]

    assert "network_mode: host" in line_of("compose shape") and "fix:" in line_of("compose shape")
    assert "ARG REVISION" in line_of("Dockerfile")
    assert ".env would be copied into the image" in line_of(".dockerignore")
    assert f"{unrouted} is not mentioned" in line_of("health route")
    assert f"is published by container {project.name}-squatter" in line_of("public port")
    for name in ("compose shape", "Dockerfile", ".dockerignore", "public port"):
        assert name in result.stderr, f"the summary names {name}"
    assert "doctor-must-not-print-this" not in result.stdout + result.stderr

    after_files = sorted(p.relative_to(project.path).as_posix() for p in project.path.rglob("*")
                         if ".git/" not in p.as_posix())
    assert after_files == before_files, "no file written (no override, no state directory)"
    assert engine_state(project.name) == before_engine, "no container, volume or image made"
    assert git_status(project) == before_git
    assert squatter.startswith(before_engine[0]) and len(before_engine) == 1, "only the squatter, still there"
