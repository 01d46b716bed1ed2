"""Build args' values never in a command line: every user of a host sees command lines (``ps``), so the values
reach ``docker build`` through a private file read into its environment, which only its user can read.

Run for real on this machine, with a ``docker`` shim on PATH that records what it was given and, while it runs,
every process's command line (``/proc/*/cmdline``, what ``ps`` shows).
"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from invoke import Config, Context

from droplet_deploy.commands import docker
from droplet_deploy.core import config
from droplet_deploy.steps.build import build_image
from droplet_deploy.steps.revision import Revision
from droplet_deploy.transport.target import LocalTarget

TOKEN = "npm_MARKER'$(id)`x` \"quoted\"\nsecond line"
URL = "https://deploy:MARKERPW@pypi.internal/simple"


@pytest.fixture
def shim(tmp_path, monkeypatch) -> Path:
    bin_dir, seen = tmp_path / "bin", tmp_path / "seen"
    bin_dir.mkdir()
    seen.mkdir()
    (bin_dir / "docker").write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > {seen}/argv\n'
        f'printf "%s" "$NPM_TOKEN" > {seen}/NPM_TOKEN\n'
        f'printf "%s" "$PIP_INDEX_URL" > {seen}/PIP_INDEX_URL\n'
        f"for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done > {seen}/ps 2>/dev/null\n"
        "exit 0\n")
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return seen


def test_build_arg_values_reach_docker_through_its_environment_never_its_command_line(root, shim):
    settings = config.load({"app_name": "shop", "environments": {"test": {}},
                            "build_args": {"NPM_TOKEN": TOKEN, "PIP_INDEX_URL": URL, "DOCKER_BUILDKIT": "1"}}, "test", root=root)
    out = io.StringIO()
    target = LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(root), echo=True, out=out)
    build_image(target, settings, Revision("a" * 40))

    argv = (shim / "argv").read_text().splitlines()
    assert (shim / "NPM_TOKEN").read_text() == TOKEN and (shim / "PIP_INDEX_URL").read_text() == URL
    assert "NPM_TOKEN" in argv and "PIP_INDEX_URL" in argv, "given by name: docker reads the value itself"
    # Names that mean something to docker or the shell keep their value inline (and are no secret's name).
    assert "DOCKER_BUILDKIT=1" in argv and f"REVISION={'a' * 40}" in argv
    ps = (shim / "ps").read_text()
    assert "docker build" in ps.replace("\n", " ") or "build --force-rm" in ps, "the listing saw the build"
    assert "MARKER" not in ps and "MARKERPW" not in ps, "no value in any command line while docker ran"
    assert "MARKER" not in out.getvalue()
    state = Path(settings.state_path)
    assert list(state.glob(".build-args-*")) == [], "the values file is gone"


def test_the_values_file_is_removed_and_a_broken_one_runs_nothing(tmp_path):
    values = tmp_path / "values"
    values.write_text(docker.values_file({"A_TOKEN": "x y'z"}))
    ran = subprocess.run(docker.with_values_from(str(values), ["sh", "-c", 'printf %s "$A_TOKEN"']),
                         capture_output=True, text=True)
    assert ran.returncode == 0 and ran.stdout == "x y'z" and not values.exists()
    values.write_text("A_TOKEN='unterminated\n")
    marker = tmp_path / "ran"
    ran = subprocess.run(docker.with_values_from(str(values), ["touch", str(marker)]), capture_output=True)
    assert ran.returncode != 0 and not marker.exists() and not values.exists()


def test_without_build_args_the_build_is_one_plain_command():
    argv = docker.build(image="x:1", revision="r", context=".", dockerfile="Dockerfile", build_args={})
    assert argv[:2] == ["docker", "build"] and "REVISION=r" in argv
    assert docker.environment_names({"HTTP_PROXY": "h", "PATH": "p", "ok_name": "v", "bad-name": "v"}) == ["ok_name"]
