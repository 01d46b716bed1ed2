"""Proving the revision on the real engine for an app whose health check answers `200 ok` as plain text.

Such an app (most apps: `/up`, `/healthz`, `/hello`) cannot report its revision, so the revision is proven from
the image label of the container that answers: the one polled on its own address before the switch, and the one
the proxy's upstream names after it. With `health_revision: body` the same app is refused within seconds, and the
release before keeps serving. The reference app, which reports its revision, keeps the end-to-end body check.
"""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from tests.conftest import VENV_BIN, load_json_lines
from tests.support.load import Load

pytestmark = pytest.mark.integration

RATE = 20  # requests per second, as the issue asks

# A small stdlib app, as a user would bring one: its health path answers `200 ok` as text/plain and says nothing
# about revisions. SIGTERM stops it after the requests in flight (the proxy no longer sends it any by then).
SERVER = '''\
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RELEASE = "first"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        found = self.path == "/up"
        body = b"ok" if found else b"not found"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    if "--check" in sys.argv:
        print("plain app ok: 1 routes")
        sys.exit(0)
    server = ThreadingHTTPServer(("0.0.0.0", 8000), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
'''

DOCKERFILE = '''\
ARG BASE_IMAGE=python:3.12-slim
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv
COPY plain/ /srv/app/
ARG REVISION=unknown
LABEL org.opencontainers.image.revision="$REVISION"
USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
CMD ["python3", "/srv/app/server.py"]
'''


def use_plain_app(project) -> str:
    project.write("plain/server.py", SERVER)
    project.write("Dockerfile.plain", DOCKERFILE)
    project.configure(dockerfile="Dockerfile.plain", health_path="/up", check_endpoints=["/up"],
                      check_command=["python3", "/srv/app/server.py", "--check"])
    return project.commit("an app whose health check answers 200 ok as plain text")


def next_release(project, name: str) -> str:
    server = project.path / "plain" / "server.py"
    lines = [f"RELEASE = {name!r}" if line.startswith("RELEASE = ") else line
             for line in server.read_text().splitlines()]
    server.write_text("\n".join(lines) + "\n")
    return project.commit(f"release {name}")


def history(project) -> list[dict]:
    return load_json_lines((project.path / ".deploy" / "test" / "history.jsonl").read_text())


def summary(result: subprocess.CompletedProcess) -> str:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("deployed ")]
    return line


def inv_timed(project, *args: str) -> tuple[int, list[tuple[float, str]], str]:
    """Run `inv` and note when each line of its output arrived, to time the steps of a failing deploy."""
    process = subprocess.Popen([str(VENV_BIN / "inv"), *args], cwd=project.path, env=project.env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    lines: list[tuple[float, str]] = []
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(process.stderr))
    reader.start()
    for line in process.stdout:
        lines.append((time.monotonic(), line.rstrip("\n")))
    code = process.wait(timeout=600)
    reader.join()
    return code, lines, "".join(errors)


def test_a_plain_text_health_check_is_proven_by_the_image_label_under_load(project):
    first = use_plain_app(project)
    result = project.inv("deploy.test")
    (app,) = project.containers()
    name = docker_name(app)
    assert f"revision proven by image label of {name}" in summary(result), result.stdout
    assert f"{name}: healthy at revision {first[:12]} (proven by image label of {name})" in result.stdout
    assert history(project)[-1]["proof"] == f"image label of {name}"
    assert project.get("/up").text == "ok"

    with Load(project.url + "/up", rate=RATE, max_seconds=300) as load:
        second = next_release(project, "second")
        result = project.inv("deploy.test")
        load.wait(1.5)  # covers the old container's drain and removal
    report = load.report()
    assert report.failed == 0, report.describe()
    load.kept_pace(report)
    (app,) = project.containers()
    name = docker_name(app)
    assert label_of(app) == second
    assert f"deployed {second[:12]} to test" in summary(result)
    assert f"revision proven by image label of {name}" in summary(result), result.stdout
    assert history(project)[-1] == {**history(project)[-1], "revision": second, "result": "ok",
                                    "proof": f"image label of {name}"}

    status = project.inv("deploy.status")
    assert f"health     OK: healthy at revision {second[:12]} (proven by image label of {name})" in status.stdout

    # health.wait through the public port reads the label of the container the proxy routes to; at a bare URL no
    # container is known, so it cannot prove a revision, and says so within seconds.
    waited = project.inv("health.wait", "--timeout", "30")
    assert f"healthy: healthy at revision {second[:12]} (proven by image label of {name})" in waited.stdout
    started = time.monotonic()
    bare = project.inv("health.wait", "--url", project.url + "/up", "--timeout", "60", check=False)
    assert time.monotonic() - started < 30, "given up within seconds, not after the timeout"
    assert bare.returncode == 1 and f"cannot prove revision {second[:12]}" in bare.stderr
    assert "--revision any" in bare.stderr
    assert project.inv("health.wait", "--url", project.url + "/up", "--revision", "any").returncode == 0

    # Insisting on the body: the same app is refused fast, with one line naming the setting; nothing changes.
    project.configure(health_revision="body")
    next_release(project, "third")
    with Load(project.url + "/up", rate=RATE, max_seconds=300) as load:
        code, lines, stderr = inv_timed(project, "deploy.test")
        load.wait(1.0)
    report = load.report()
    assert code == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    assert "health_revision is body" in errors[0] and "health_revision: auto" in errors[0], errors[0]
    assert f"{name} still serving revision {second[:12]}" in errors[0]
    first_answer = next(t for t, line in lines if "without a revision in the body" in line)
    gave_up = next(t for t, line in lines if "new container" in line and "failed: " in line)
    assert gave_up - first_answer < 5, "refused within seconds of the first answer, not at the 60 s timeout"
    assert report.failed == 0, report.describe()
    assert project.containers() == [app], "the release before keeps serving"
    assert project.get("/up").text == "ok"
    assert history(project)[-1]["result"] == "failed" and "health_revision" in history(project)[-1]["reason"]


def test_the_reference_app_keeps_the_end_to_end_body_check(project):
    result = project.inv("deploy.test")
    assert "revision proven by health body" in summary(result), result.stdout
    assert "(proven by health body)" in result.stdout
    assert history(project)[-1]["proof"] == "health body"
    assert project.health()["revision"] == project.head()


def docker_name(container_id: str) -> str:
    return subprocess.run(["docker", "inspect", "--format", "{{.Name}}", container_id], capture_output=True,
                          text=True, check=True).stdout.strip().lstrip("/")


def label_of(container_id: str) -> str:
    return subprocess.run(["docker", "inspect", "--format",
                           '{{index .Config.Labels "org.opencontainers.image.revision"}}', container_id],
                          capture_output=True, text=True, check=True).stdout.strip()
