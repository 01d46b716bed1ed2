"""The three third-party apps of tests/support/thirdparty.py build and serve under plain ``docker compose``.

Not through the toolkit: this proves the apps, as their users have them, work on this machine offline, so that a
later failure of ``inv init`` or a deploy on them is the toolkit's. Each test assembles one app's repository,
runs ``docker compose -p <unique> up -d --build``, waits for its health route on the published port, checks what
later tests rely on (Django answers 400 to a Host that is the container's own address; without a .dockerignore
the image holds ``.env``) and removes everything with ``docker compose down -v --rmi local``.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid

import pytest
import requests

from . import thirdparty as tp

pytestmark = pytest.mark.integration

HEALTH_DEADLINE = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def docker_lines(*args: str) -> list[str]:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)
    return result.stdout.split()


def leftovers(project: str) -> list[str]:
    """Containers, volumes, networks and images of a compose project that are still there."""
    label = f"label=com.docker.compose.project={project}"
    return (docker_lines("ps", "-aq", "--filter", label) + docker_lines("volume", "ls", "-q", "--filter", label)
            + docker_lines("network", "ls", "-q", "--filter", label)
            + docker_lines("image", "ls", "-q", "--filter", f"reference={project}-*"))


def wait_healthy(app: tp.App, project: str) -> float:
    """Seconds until the health route answers 200; fails with the logs when the deadline passes first."""
    started = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - started < HEALTH_DEADLINE:
        try:
            answer = requests.get(app.health_url, headers=app.spec.health_headers, timeout=3)
            if answer.status_code == 200:
                return time.monotonic() - started
            last = f"HTTP {answer.status_code}: {answer.text[:200]}"
        except requests.RequestException as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    logs = app.compose(project, "logs", "--no-color", "--tail", "60", check=False)
    ps = app.compose(project, "ps", "-a", check=False)
    pytest.fail(f"{app.name}: {app.health_url} not 200 within {HEALTH_DEADLINE:.0f}s ({last})\n"
                f"--- ps\n{ps.stdout}\n--- logs\n{logs.stdout[-4000:]}{logs.stderr[-1000:]}")


def container_address(app: tp.App, project: str) -> str:
    cid = app.compose(project, "ps", "-q", app.service).stdout.strip()
    out = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                          cid], capture_output=True, text=True, check=True, timeout=30).stdout.split()
    assert out, f"{app.name}: container {cid} has no address"
    return out[0]


def check_repository(app: tp.App) -> None:
    """What a user's repository looks like before ``inv init``: clean, .env present and ignored, nothing of ours."""
    assert tp.git(app.path, "status", "--porcelain", "--untracked-files=normal") == ""
    assert (app.path / ".env").is_file()
    assert tp.git(app.path, "check-ignore", ".env").strip() == ".env"
    assert not (app.path / ".dockerignore").exists()
    dockerfile = (app.path / "Dockerfile").read_text()
    assert "REVISION" not in dockerfile and "LABEL" not in dockerfile
    assert f'"{app.port}:8000"' in app.compose_file.read_text()
    assert sorted(p.name for p in (app.path / "wheels").glob("*.whl")), "no wheels in the build context"


def check_app(app: tp.App, project: str) -> dict[str, str]:
    """The app's own behaviour beyond its health route; returns evidence worth printing."""
    base = f"http://127.0.0.1:{app.port}"
    evidence: dict[str, str] = {}
    if app.name == "flask":
        index = requests.get(base + "/", timeout=5)  # the blog's index reads the database init-db made
        assert index.status_code == 200 and "Posts" in index.text, index.text[:300]
        assert requests.get(base + "/hello", timeout=5).text == "Hello, World!"
    elif app.name == "fastapi":
        assert requests.get(base + "/", timeout=5).json() == {"message": "Hello World"}
    elif app.name == "django":
        for host in ("localhost", "127.0.0.1", tp.DJANGO_DOMAIN):
            answer = requests.get(base + "/healthz", headers={"Host": host}, timeout=5)
            assert answer.status_code == 200, (host, answer.status_code)
        address = container_address(app, project)
        refused = requests.get(base + "/healthz", headers={"Host": address}, timeout=5)
        # ALLOWED_HOSTS has the domain, localhost and 127.0.0.1, so a probe by the container's address is refused.
        assert refused.status_code == 400, (address, refused.status_code, refused.text[:300])
        evidence["django_host_check"] = (f"Host: localhost -> 200; Host: {address} (container address) -> "
                                         f"{refused.status_code} {refused.reason}")
    user = app.compose(project, "exec", "-T", app.service, "id", "-u").stdout.strip()
    assert user == "1000", f"{app.name} runs as uid {user}"
    # No .dockerignore yet, so `COPY . .` put the secrets file into the image: what `inv init` must stop.
    leaked = app.compose(project, "exec", "-T", app.service, "test", "-f", "/app/.env", check=False)
    assert leaked.returncode == 0, f"{app.name}: expected /app/.env in the image without a .dockerignore"
    return evidence


@pytest.mark.parametrize("name", tp.APPS)
def test_app_builds_and_serves_under_plain_compose(name, tmp_path, record_property):
    project = f"tp{uuid.uuid4().hex[:8]}-{name}"
    app = tp.assemble(name, tmp_path / name, port=free_port(), container_name=f"{project}-app")
    check_repository(app)
    try:
        started = time.monotonic()
        app.compose(project, "up", "-d", "--build")
        app.timings["up_build"] = time.monotonic() - started
        app.timings["healthy_after_up"] = wait_healthy(app, project)
        evidence = check_app(app, project)
    finally:
        down = app.down(project)
        left = leftovers(project)
    assert down.returncode == 0, down.stderr[-2000:]
    assert not left, f"{project} left {left}"
    timings = {k: round(v, 1) for k, v in app.timings.items()}
    record_property("timings", timings)
    print(f"{name}: {app.spec.source}; timings (s): {timings}; {evidence}")
