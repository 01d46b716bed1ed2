"""The container files: compose definitions, proxy config, Dockerfile and .dockerignore."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from app_testing import REPO

FILES = ["docker-compose.test.yml", "docker-compose.beta.yml", "docker-compose.dev.yml"]
PROXY_COMMAND = ["sh", "-c", "[ -s /etc/nginx/upstream/app.conf ] || echo 'server app:8000;' > "
                 "/etc/nginx/upstream/app.conf; exec nginx -g 'daemon off;'"]


def _compose(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


def _has_compose() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0  # noqa: S603,S607


def test_no_container_name_anywhere():
    for name in FILES:
        assert "container_name" not in (REPO / name).read_text(), name


@pytest.mark.parametrize("name", ["docker-compose.test.yml", "docker-compose.beta.yml"])
def test_deployed_stacks_share_one_shape(name):
    services = _compose(name)["services"]
    app, proxy = services["app"], services["proxy"]
    assert app["image"] == "${APP_IMAGE:-deploy-demo:latest}"
    assert "ports" not in app
    assert app["expose"] == ["8000"]
    assert app["volumes"] == ["app-data:/data", "app-logs:/logs"]
    assert app["stop_grace_period"] == "30s"
    assert "/health/ready" in " ".join(app["healthcheck"]["test"])
    assert proxy["image"] == "${PROXY_IMAGE:-nginx:1.27-alpine}"
    assert proxy["volumes"] == ["./proxy/default.conf:/etc/nginx/conf.d/default.conf:ro",
                                "proxy-upstream:/etc/nginx/upstream"]
    assert proxy["depends_on"] == ["app"]
    assert proxy["command"] == PROXY_COMMAND
    assert set(_compose(name)["volumes"]) == {"app-data", "app-logs", "proxy-upstream"}


def test_test_stack_settings():
    services = _compose("docker-compose.test.yml")["services"]
    app = services["app"]
    assert services["proxy"]["ports"] == ["${PUBLIC_PORT:-8001}:80"]
    assert app["env_file"] == ["config/development.env", "${APP_ENV_FILE:-/dev/null}"]
    assert app["environment"] == {"APP_ENV": "test"}
    check = app["healthcheck"]
    assert (check["interval"], check["timeout"], check["retries"], check["start_period"]) == ("5s", "3s", 3, "10s")


def test_beta_stack_settings():
    services = _compose("docker-compose.beta.yml")["services"]
    app = services["app"]
    assert services["proxy"]["ports"] == ["${PUBLIC_PORT:-8000}:80"]
    assert app["env_file"] == ["config/production.env", "${APP_ENV_FILE:-.env}"]
    assert app["restart"] == "unless-stopped"
    assert set(app["deploy"]["resources"]["limits"]) == {"memory", "cpus"}
    assert app["logging"]["driver"] == "json-file"
    assert {"max-size", "max-file"} <= set(app["logging"]["options"])
    check = app["healthcheck"]
    assert (check["interval"], check["timeout"], check["retries"], check["start_period"]) == ("30s", "15s", 5, "90s")


def test_dev_stack_reloads_bind_mounted_code():
    app = _compose("docker-compose.dev.yml")["services"]["app"]
    assert app["build"]["target"] == "development"
    assert app["ports"] == ["8002:8000"]
    assert any(volume.startswith("./app:/srv/app") for volume in app["volumes"])
    assert app["command"] == ["python3", "-m", "app.devserver"]


@pytest.mark.skipif(not _has_compose(), reason="docker compose CLI plugin not installed")
@pytest.mark.parametrize("name", FILES)
def test_docker_compose_accepts_the_file(name, tmp_path):
    # A copy of the project files, so the beta stack's required .env can exist without touching the repo.
    for part in (name, "config", "proxy", "app", "Dockerfile"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, tmp_path / part)
        else:
            shutil.copy(source, tmp_path / part)
    (tmp_path / ".env").write_text("APP_SECRET_KEY=only-for-the-config-check\n")
    env = {**os.environ, "APP_IMAGE": "deploy-demo:0123456789ab"}
    done = subprocess.run(["docker", "compose", "-f", name, "config", "-q"],  # noqa: S603,S607
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_proxy_config_routes_everything_to_the_upstream_file():
    conf = (REPO / "proxy" / "default.conf").read_text()
    assert re.search(r"upstream app_upstream \{\s*include /etc/nginx/upstream/app.conf;\s*\}", conf)
    assert "listen 80 default_server;" in conf
    for header in ("Host", "X-Request-ID", "X-Forwarded-For"):
        assert f"proxy_set_header {header} " in conf
    assert "proxy_next_upstream error timeout;" in conf
    assert "proxy_pass http://app_upstream;" in conf


def test_local_proxy_image_definition():
    text = (REPO / "proxy" / "local.Dockerfile").read_text()
    assert text.startswith("# ") and "FROM local/bookworm-python:latest" in text
    assert "rm -f /etc/nginx/sites-enabled/default" in text
    assert 'CMD ["nginx", "-g", "daemon off;"]' in text


def _instructions(path: Path) -> list[str]:
    joined = re.sub(r"\\\n", " ", path.read_text())
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_dockerfile_order_keeps_the_cache_and_the_revision_honest():
    lines = _instructions(REPO / "Dockerfile")
    assert lines[0] == "ARG BASE_IMAGE=python:3.12-slim"
    froms = [line for line in lines if line.startswith("FROM ")]
    assert froms == ["FROM ${BASE_IMAGE} AS builder", "FROM ${BASE_IMAGE} AS runtime",
                     "FROM runtime AS development", "FROM runtime AS production"]
    runtime = lines[lines.index("FROM ${BASE_IMAGE} AS runtime"):lines.index("FROM runtime AS development")]
    production = lines[lines.index("FROM runtime AS production"):]
    index = {key: next(i for i, line in enumerate(production) if line.startswith(key)) for key in (
        "COPY", "RUN find /srv/app", "ARG REVISION=unknown", "LABEL org.opencontainers.image.revision",
        "ENV APP_REVISION", "RUN python3 -m app --check", "USER 10001:10001", "HEALTHCHECK", "CMD")}
    assert index["COPY"] < index["RUN find /srv/app"] < index["ARG REVISION=unknown"]
    assert index["ARG REVISION=unknown"] < index["LABEL org.opencontainers.image.revision"] < index["CMD"]
    assert index["ENV APP_REVISION"] < index["RUN python3 -m app --check"] < index["USER 10001:10001"]
    assert "PYTHONDONTWRITEBYTECODE=1" in " ".join(runtime), "both runnable stages inherit it from runtime"
    assert production[-1] == 'CMD ["python3", "-m", "app"]'
    assert "STOPSIGNAL SIGTERM" in production
    assert "curl" not in " ".join(production)


def test_dockerignore_keeps_secrets_and_bytecode_out():
    entries = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for needed in (".git", ".env", ".env.*", "!.env.example", "**/__pycache__", "**/*.pyc", "**/*.pyo", ".venv",
                   "tests", "docs", "bench", ".pytest_cache", "*.log", "backups"):
        assert needed in entries, needed
    assert entries.index("!.env.example") > entries.index(".env.*")  # a later line wins
