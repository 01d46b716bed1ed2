"""Shared fixtures: a throwaway git clone of this repo to deploy from, on the real Docker engine.

Integration tests deploy real containers. Each test gets its own compose project, app image name and public
port, and everything it created is removed afterwards, so tests can run beside a developer's own stacks.
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
BASE_IMAGE = os.environ.get("TEST_BASE_IMAGE", "local/bookworm-python:latest")
PROXY_IMAGE = os.environ.get("TEST_PROXY_IMAGE", "local/nginx:latest")


def docker_available() -> str | None:
    """None when the engine answers, else the reason. In CI a missing engine is a failure, never a skip."""
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                                text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker not usable: {exc}"
    return None if result.returncode == 0 else f"docker engine not reachable: {result.stderr.strip()[:200]}"


def pytest_collection_modifyitems(config, items):
    reason = None
    needs_engine = [item for item in items if "integration" in item.keywords]
    if needs_engine:
        reason = docker_available()
    if reason is None:
        return
    if os.environ.get("CI"):
        # CI installs and starts the engine itself (scripts/bootstrap); not having one is a broken run.
        raise pytest.UsageError(f"integration tests need the Docker engine: {reason}")
    for item in needs_engine:
        item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def repo_files() -> list[str]:
    """Tracked files plus untracked ones git does not ignore: what a fresh clone of the work would hold."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         check=True, capture_output=True).stdout.decode()
    return [f for f in out.split("\0") if f and (REPO / f).is_file()]


@dataclass
class Project:
    """A git clone of this repo configured with its own project name, image name and port."""

    path: Path
    name: str
    port: int
    config_file: Path
    settings: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("INVOKE_")}
        env.update({"INVOKE_RUNTIME_CONFIG": str(self.config_file), "PATH": f"{VENV_BIN}:{env.get('PATH', '')}"})
        env.update(extra)
        return env

    def inv(self, *args: str, check: bool = True, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
        result = subprocess.run([str(VENV_BIN / "inv"), *args], cwd=self.path, env=self.env(**env),
                                capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"inv {' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
                                 f"\n--- stderr\n{result.stderr[-4000:]}")
        return result

    def configure(self, **deploy: object) -> None:
        """Merge keys into the runtime config (top-level deploy keys, or environments={...})."""
        merged = self.settings.setdefault("deploy", {})
        for key, value in deploy.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                _deep_merge(merged[key], value)
            else:
                merged[key] = value
        self.config_file.write_text(yaml.safe_dump(self.settings, sort_keys=False))

    def commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        return git(self.path, "rev-parse", "HEAD").strip()

    def write(self, relative: str, text: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def get(self, path: str, timeout: float = 5.0):
        import requests

        return requests.get(self.url + path, timeout=timeout)

    def health(self) -> dict:
        return self.get("/api/health").json()

    def compose_project(self, env: str = "test") -> str:
        return self.settings["deploy"]["environments"][env]["project"]

    def containers(self, env: str = "test", service: str = "app") -> list[str]:
        out = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter",
                              f"label=com.docker.compose.project={self.compose_project(env)}", "--filter",
                              f"label=com.docker.compose.service={service}"],
                             capture_output=True, text=True, check=True).stdout
        return out.split()


def _deep_merge(into: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = value


# Every project name the session made: when it ends, the dangling images their builds left go too.
MADE: set[str] = set()


def make_project(tmp_path: Path, *, files: list[str] | None = None) -> Project:
    name = f"dt{uuid.uuid4().hex[:8]}"
    MADE.add(name)
    path = tmp_path / "project"
    path.mkdir()
    for rel in files or repo_files():
        dest = path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dest)
    if (path / "droplet_deploy").is_dir():
        # Invoke turns off writing bytecode (its --write-pyc), so without this every `inv` in the clone compiles
        # the toolkit again; an installed wheel holds the bytecode pip compiled, which this matches.
        compileall.compile_dir(str(path / "droplet_deploy"), quiet=1)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    project = Project(path, name, free_port(), tmp_path / "invoke-runtime.yaml")
    project.configure(
        app_name=name,
        build_args={"BASE_IMAGE": BASE_IMAGE},
        proxy_image=PROXY_IMAGE,
        health_timeout=60,
        environments={"test": {"project": f"{name}-test", "public_port": project.port, "drain_seconds": 2}},
    )
    return project


def remove_project_resources(name: str) -> None:
    """Remove every container, volume, network and image whose name starts with the test's unique name."""
    def out(*argv: str) -> list[str]:
        return subprocess.run(list(argv), capture_output=True, text=True).stdout.split()

    containers = [c for c in out("docker", "ps", "-aq", "--filter", f"name={name}")]
    if containers:
        subprocess.run(["docker", "rm", "-f", "-v", *containers], capture_output=True)
    volumes = [v for v in out("docker", "volume", "ls", "-q") if v.startswith(name)]
    if volumes:
        subprocess.run(["docker", "volume", "rm", "-f", *volumes], capture_output=True)
    networks = [n for n in out("docker", "network", "ls", "--format", "{{.Name}}") if n.startswith(name)]
    if networks:
        subprocess.run(["docker", "network", "rm", *networks], capture_output=True)
    # The app's images, its services' own (<name>-<service>) and those a test made under a name of its own that
    # starts with the app's (<name>other, standing for another project).
    images = [ref for ref in out("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
              if ref.startswith(name)]
    if images:
        subprocess.run(["docker", "image", "rm", "-f", *images], capture_output=True)


def remove_dangling_builds(names: set[str]) -> None:
    """The untagged images the toolkit's builds for ``names`` left (a tag moved to a rebuild): each carries its
    app's ``droplet-deploy.app`` label, so nobody else's image is chosen."""
    for name in sorted(names):
        found = subprocess.run(["docker", "image", "ls", "--quiet", "--no-trunc", "--filter", "dangling=true",
                                "--filter", f"label=droplet-deploy.app={name}"],
                               capture_output=True, text=True).stdout.split()
        if found:
            subprocess.run(["docker", "image", "rm", *found], capture_output=True)


@pytest.fixture(scope="session", autouse=True)
def _suite_cleans_what_it_built():
    """At the end of the session: each test removed its project's tagged images already; these are the rest."""
    yield
    if MADE and docker_available() is None:
        remove_dangling_builds(MADE)


@pytest.fixture
def project(tmp_path):
    proj = make_project(tmp_path)
    yield proj
    remove_project_resources(proj.name)


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def load_json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skip is a failure: CI installs and starts every real part the suite needs (scripts/bootstrap and
    the fixtures), so a test that skips there is one nobody has seen pass."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be: {reason}"
