"""`inv init`'s detection and planning on small repositories in tmp (files only: no git, no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from droplet_deploy.core import config
from droplet_deploy.core.errors import InitError
from droplet_deploy.setup import init

DOCKERFILE = """\
FROM python:3.12-slim AS base
RUN pip install flask gunicorn

FROM base
WORKDIR /app
COPY . /app
EXPOSE 5000
CMD ["gunicorn", "-b", "0.0.0.0:5000", "flaskr:create_app()"]
"""

COMPOSE = """\
services:
  web:
    build: .
    container_name: flaskr
    ports: ["8000:5000"]
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://127.0.0.1:5000/hello"]
  db:
    image: postgres:16
"""

ROUTES = """\
from flask import Flask
app = Flask(__name__)

@app.route("/hello")
def hello():
    return "Hello, World!"

@app.get('/healthz')
def healthz():
    return {"status": "healthy"}
"""


def repo(tmp_path: Path, *, compose: str = COMPOSE, dockerfile: str | None = DOCKERFILE) -> Path:
    root = tmp_path / "Flaskr App"
    (root / "flaskr").mkdir(parents=True)
    (root / "docker-compose.yml").write_text(compose)
    if dockerfile is not None:
        (root / "Dockerfile").write_text(dockerfile)
    (root / "flaskr" / "__init__.py").write_text(ROUTES)
    return root


def run(root: Path, **flags) -> tuple[init.Outcome, dict[str, str], list[str]]:
    written: dict[str, str] = {}
    said: list[str] = []

    def write(name: str, text: str) -> None:
        written[name] = text
        (root / name).write_text(text)

    outcome = init.run(root, service=flags.get("service"), force=flags.get("force", False), write=write,
                       say=said.append)
    return outcome, written, said


def test_detects_service_ports_dockerfile_and_health_routes(tmp_path):
    found = init.detect(repo(tmp_path))
    assert (found.app_name, found.app_service, found.app_port, found.published_port) == \
        ("flaskr-app", "web", 5000, 8000)
    assert found.compose_files == {"test": "docker-compose.yml", "prod": "docker-compose.yml"}
    assert [(h.path, h.where) for h in found.health] == [("/healthz", "flaskr/__init__.py:8"),
                                                         ("/hello", "flaskr/__init__.py:4")]
    assert found.health_path == "/healthz"


def test_the_written_config_is_one_the_toolkit_accepts(tmp_path):
    root = repo(tmp_path)
    outcome, written, said = run(root)
    assert set(written) == {"invoke.yaml", "tasks.py", ".gitignore", ".dockerignore"}
    assert "from droplet_deploy.tasks import ns" in written["tasks.py"] and written[".gitignore"] == ".deploy/\n"
    section = yaml.safe_load(written["invoke.yaml"])["deploy"]
    assert section["environments"]["prod"]["public_port"] == 8000, "the port the app published"
    assert section["app_dir"] == "/app"
    for env in ("test", "prod"):
        settings = config.load(section, env, root=root)
        assert (settings.app_service, settings.app_port, settings.health_path) == ("web", 5000, "/healthz")
    assert settings.env_file is None, "the compose file reads no APP_ENV_FILE: no host env file is required"


def test_the_missing_dockerfile_lines_and_the_health_answer_are_printed(tmp_path):
    _, _, said = run(repo(tmp_path))
    text = "\n".join(said)
    for line in ("ARG REVISION=unknown", 'LABEL org.opencontainers.image.revision="$REVISION"',
                 'ENV APP_REVISION="$REVISION"', "USER 10001:10001"):
        assert f"    {line}" in text
    assert "GET /healthz must answer 2xx once the app is up: plain `ok` is enough" in text, "as the README says"


def test_a_second_run_finds_everything_in_place_and_writes_nothing(tmp_path):
    root = repo(tmp_path, dockerfile=DOCKERFILE.replace(
        'CMD', 'ARG REVISION\nLABEL org.opencontainers.image.revision=$REVISION\nENV APP_REVISION=$REVISION\n'
               'USER 10001\nCMD'))
    run(root)
    before = (root / "invoke.yaml").read_text()
    outcome, written, said = run(root)
    assert written == {} and outcome.complete
    assert said[-1].startswith("everything is in place")
    assert (root / "invoke.yaml").read_text() == before


def test_existing_files_are_never_overwritten_without_force(tmp_path):
    root = repo(tmp_path)
    (root / "tasks.py").write_text("from invoke import task\n\n@task\ndef hello(c):\n    pass\n")
    (root / "invoke.yaml").write_text("run:\n  echo: true\ndeploy:\n  app_name: mine\n")
    outcome, written, said = run(root)
    assert "tasks.py" not in written and "invoke.yaml" not in written
    assert any(line.startswith("tasks.py is your own") for line in outcome.todo)
    _, written, _ = run(root, force=True)
    assert yaml.safe_load(written["invoke.yaml"])["run"] == {"echo": True}, "the rest of the file is kept"
    assert yaml.safe_load(written["invoke.yaml"])["deploy"]["app_name"] == "flaskr-app"


def test_an_invoke_yaml_without_deploy_settings_gets_them_added(tmp_path):
    root = repo(tmp_path)
    (root / "invoke.yaml").write_text("run:\n  echo: true\n")
    _, written, _ = run(root)
    body = yaml.safe_load(written["invoke.yaml"])
    assert body["run"] == {"echo": True} and body["deploy"]["app_service"] == "web"


@pytest.mark.parametrize(("compose", "service", "message"), [
    ("services:\n  api: {build: ./api}\n  web: {build: ./web}\n", None,
     r"more than one service could be the app \(api, web\) \(pass --service NAME"),
    ("services:\n  db: {image: postgres}\n", None, "no service builds from this repository or publishes a port"),
    (COMPOSE, "worker", r"has no service 'worker' \(services: web, db\)"),
])
def test_which_service_is_the_app_is_asked_never_guessed(tmp_path, compose, service, message):
    with pytest.raises(InitError, match=message):
        init.detect(repo(tmp_path, compose=compose), service)


def test_service_flag_settles_an_ambiguous_file(tmp_path):
    root = repo(tmp_path, compose="services:\n  api: {build: ., expose: ['9000']}\n  web: {build: ./web}\n")
    assert (init.detect(root, "api").app_service, init.detect(root, "api").app_port) == ("api", 9000)


def test_no_dockerfile_and_no_compose_file_are_one_line_each(tmp_path):
    with pytest.raises(InitError, match="no Dockerfile at Dockerfile"):
        init.detect(repo(tmp_path, dockerfile=None))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InitError, match="no compose file in"):
        init.detect(empty)


def test_the_dockerfile_named_by_the_build_section_is_the_one_read(tmp_path):
    root = repo(tmp_path, compose="services:\n  web:\n    build: {context: ., dockerfile: docker/app.Dockerfile}\n")
    (root / "docker").mkdir()
    (root / "docker" / "app.Dockerfile").write_text("FROM x\nEXPOSE 7000\nUSER app\n")
    found = init.detect(root)
    assert (found.dockerfile_path, found.app_port) == ("docker/app.Dockerfile", 7000)
    assert init.deploy_config(found)["dockerfile"] == "docker/app.Dockerfile"


def test_per_environment_compose_files_are_used_when_present(tmp_path):
    root = repo(tmp_path)
    (root / "docker-compose.prod.yml").write_text(COMPOSE)
    assert init.detect(root).compose_files == {"test": "docker-compose.yml", "prod": "docker-compose.prod.yml"}


@pytest.mark.parametrize(("dockerfile", "missing"), [
    ("FROM a\nUSER root\n", ["ARG", "LABEL", "ENV", "USER"]),
    ("FROM a\nARG REVISION\nLABEL org.opencontainers.image.revision=$REVISION\nENV APP_REVISION=$REVISION\n"
     "USER 0:0\n", ["USER"]),
    # The final image inherits what the stage it builds on set; a builder stage's lines never reach it.
    ("FROM a AS base\nENV APP_REVISION=x\nUSER 1000\nFROM base\nARG REVISION\n"
     "LABEL org.opencontainers.image.revision=$REVISION\n", []),
    ("FROM a AS builder\nARG REVISION\nENV APP_REVISION=x\nUSER 1000\nFROM python:3.12\n"
     "LABEL org.opencontainers.image.revision=x\n", ["ARG", "ENV", "USER"]),
])
def test_dockerfile_lines_to_add(dockerfile, missing):
    assert [line.split()[0] for line in init.dockerfile_lines_to_add(dockerfile)] == missing


def test_the_reference_dockerfile_has_every_line():
    assert init.dockerfile_lines_to_add((Path(__file__).resolve().parents[2] / "Dockerfile").read_text()) == []


def test_app_names_from_hostile_directory_names():
    assert init.app_name("My App; rm -rf /") == "my-app-rm-rf"
    assert init.app_name("___") == "app"
