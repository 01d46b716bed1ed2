"""The real image on the real engine: built from a copy of the context that holds a .env with a marker secret
and stale bytecode, then inspected, searched layer by layer, run, and stopped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from app_testing import REPO, free_port

pytestmark = pytest.mark.integration

BASE_IMAGE = "local/bookworm-python:latest"
PROXY_IMAGE = "local/nginx:latest"
MARKER = f"marker-secret-{uuid.uuid4().hex}"


def docker(*args: str, timeout: float = 300, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,  # noqa: S603,S607
                          **kwargs)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done


@pytest.fixture(scope="module")
def engine() -> None:
    if not shutil.which("docker"):
        pytest.skip("no docker CLI on this machine")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)  # noqa: S603,S607
    if info.returncode != 0:
        pytest.skip(f"docker info failed, no engine to build on: {info.stderr.strip()[-200:]}")
    if docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        pytest.fail(f"base image {BASE_IMAGE} is missing: build it offline (mmdebstrap + docker import) first")


def _context(root: Path) -> Path:
    """A copy of the build context, planted with everything that must never reach the image."""
    context = root / "context"
    context.mkdir()
    for part in ("app", "config", "proxy"):
        shutil.copytree(REPO / part, context / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for part in ("Dockerfile", ".dockerignore", ".env.example"):
        shutil.copy(REPO / part, context / part)
    (context / ".env").write_text(f"APP_SECRET_KEY={MARKER}\n")
    (context / ".env.production").write_text(f"APP_SECRET_KEY={MARKER}\n")
    (context / "app" / ".env").write_text(f"APP_SECRET_KEY={MARKER}\n")
    stale = context / "app" / "__pycache__"
    stale.mkdir()
    (stale / "routes.cpython-311.pyc").write_bytes(b"stale bytecode " + MARKER.encode())
    (context / "app" / "old.pyc").write_bytes(b"stale " + MARKER.encode())
    (context / "tests").mkdir()
    (context / "tests" / "secret.txt").write_text(MARKER)
    return context


def _build(context: Path, tag: str, revision: str) -> str:
    done = docker("build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--build-arg", f"REVISION={revision}",
                  "-t", tag, str(context), env={**os.environ, "DOCKER_BUILDKIT": "0"})
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def built(engine, tmp_path_factory) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("image")
    context = _context(root)
    suffix = uuid.uuid4().hex[:12]
    image = {"tag": f"deploy-demo-test:{suffix}", "revision": f"{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}",
             "context": context, "root": root, "extra_tags": []}
    image["output"] = _build(context, image["tag"], image["revision"])
    yield image
    for tag in [image["tag"], *image["extra_tags"]]:
        docker("rmi", "-f", tag, check=False)


def test_build_output_shows_the_check_line(built):
    assert f"app ok: 10 routes, revision {built['revision']}" in built["output"]


def test_label_holds_the_revision(built):
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", built["tag"]).stdout)
    assert labels["org.opencontainers.image.revision"] == built["revision"]


def test_no_bytecode_in_the_code_tree(built):
    done = docker("run", "--rm", "--entrypoint", "find", built["tag"], "/srv/app", "-name", "*.pyc", "-o",
                  "-name", "__pycache__")
    assert done.stdout == ""


def test_runs_as_uid_10001(built):
    assert docker("image", "inspect", "--format", "{{.Config.User}}", built["tag"]).stdout.strip() == "10001:10001"
    assert docker("run", "--rm", "--entrypoint", "id", built["tag"], "-u").stdout.strip() == "10001"


def test_no_env_file_in_the_image(built):
    done = docker("run", "--rm", "--entrypoint", "find", built["tag"], "/", "-xdev",
                  "(", "-name", ".env", "-o", "-name", ".env.*", ")", "-print", check=False)
    assert done.stdout == ""
    assert (built["context"] / ".env").exists()  # the context really held one


def test_secret_marker_is_in_no_layer(built):
    archive = built["root"] / "image.tar"
    docker("save", "-o", str(archive), built["tag"])
    needle = MARKER.encode()
    overlap = len(needle) - 1
    tail = b""
    with archive.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            window = tail + chunk
            assert needle not in window, "the marker secret from the build context reached the image"
            tail = window[-overlap:]
    archive.unlink()
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", built["tag"]).stdout
    assert MARKER not in history


def test_check_command_inside_the_image(built):
    done = docker("run", "--rm", built["tag"], "python3", "-m", "app", "--check")
    assert done.stdout == f"app ok: 10 routes, revision {built['revision']}\n"


def test_a_new_revision_reuses_the_code_layers(built):
    revision = uuid.uuid4().hex
    tag = f"{built['tag']}-again"
    built["extra_tags"].append(tag)
    output = _build(built["context"], tag, revision)
    steps = output.split("Step ")
    copy_steps = [step for step in steps if step.split(":", 1)[-1].strip().startswith("COPY")]
    assert copy_steps and all("Using cache" in step for step in copy_steps)
    assert f"app ok: 10 routes, revision {revision}" in output
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", tag).stdout)
    assert labels["org.opencontainers.image.revision"] == revision


def _poll(url: str, timeout: float = 60) -> requests.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == 200:
                return response
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{url} not healthy within {timeout}s; last: {last}")


def test_running_container_reports_its_revision_and_drains_on_stop(built):
    name = f"deploy-demo-test-{uuid.uuid4().hex[:12]}"
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::8000", "-e", "APP_ENV=test", built["tag"])
    try:
        port = docker("port", name, "8000/tcp").stdout.splitlines()[0].rsplit(":", 1)[1]
        health = _poll(f"http://127.0.0.1:{port}/api/health").json()
        assert health["status"] == "healthy"
        assert health["revision"] == built["revision"]
        docker("stop", "-t", "20", name)
        assert docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
        logs = docker("logs", name).stdout
        messages = [json.loads(line)["msg"] for line in logs.splitlines() if line.startswith("{")]
        assert "draining" in messages and "drained" in messages
    finally:
        docker("rm", "-f", name, check=False)


def test_test_stack_serves_through_the_proxy(built):
    docker("build", "-q", "-f", str(REPO / "proxy" / "local.Dockerfile"), "-t", PROXY_IMAGE, str(REPO / "proxy"),
           env={**os.environ, "DOCKER_BUILDKIT": "0"})
    project = f"ddtest{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = {**os.environ, "APP_IMAGE": built["tag"], "PROXY_IMAGE": PROXY_IMAGE, "PUBLIC_PORT": str(port)}
    compose = ["compose", "-p", project, "-f", str(REPO / "docker-compose.test.yml")]
    try:
        docker(*compose, "up", "-d", env=env, cwd=REPO)
        base = f"http://127.0.0.1:{port}"
        health = _poll(f"{base}/api/health").json()
        assert (health["status"], health["revision"], health["env"]) == ("healthy", built["revision"], "test")
        tagged = requests.get(f"{base}/health/live", headers={"X-Request-ID": "through-proxy-1"}, timeout=5)
        assert tagged.headers["X-Request-ID"] == "through-proxy-1"
        minted = requests.get(f"{base}/health/live", timeout=5).headers["X-Request-ID"]
        assert len(minted) == 32  # nginx's own $request_id, passed on and echoed by the app

        # What a deploy does: point the proxy at one specific container and reload gracefully.
        container = docker(*compose, "ps", "-q", "app", env=env, cwd=REPO).stdout.split()[0]
        container_name = docker("inspect", "--format", "{{.Name}}", container).stdout.strip().lstrip("/")
        docker(*compose, "exec", "-T", "proxy", "sh", "-c",
               f"echo 'server {container_name}:8000;' > /etc/nginx/upstream/app.conf && nginx -t && nginx -s reload",
               env=env, cwd=REPO)
        assert _poll(f"{base}/api/health").json()["revision"] == built["revision"]

        deadline = time.monotonic() + 60
        states: dict = {}
        while time.monotonic() < deadline:
            ids = docker(*compose, "ps", "-q", env=env, cwd=REPO).stdout.split()
            states = {i: docker("inspect", "--format", "{{.State.Health.Status}}", i).stdout.strip() for i in ids}
            if len(states) == 2 and set(states.values()) == {"healthy"}:
                break
            time.sleep(1)
        assert set(states.values()) == {"healthy"}, states
    finally:
        docker(*compose, "down", "-v", "--timeout", "20", env=env, cwd=REPO, check=False)
