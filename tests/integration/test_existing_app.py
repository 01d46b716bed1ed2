"""An existing app's compose file, written for `docker compose up` (a fixed container_name, a published port,
`build: .`, a curl health check), deploys as it is: the toolkit's override owns the proxy. Real engine, real
compose; the merged files are checked with compose's own `config`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from droplet_deploy.core import config
from droplet_deploy.engines.compose import compose_file, override
from tests.conftest import BASE_IMAGE, PROXY_IMAGE
from tests.integration.test_remote import configure_prod
from tests.support.load import Load

pytestmark = pytest.mark.integration

COMPOSE = """\
# The app as its authors ran it: `docker compose up --build`.
services:
  web:
    build: .
    container_name: {name}-web
    ports:
      - "8000:8000"
    env_file:
      - config/development.env
    environment:
      APP_ENV: test
    volumes:
      - app-data:/data
    restart: unless-stopped
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://127.0.0.1:8000/api/health"]
      interval: 5s
      timeout: 3s
      retries: 3
    stop_grace_period: 30s

  worker:
    image: {base_image}
    container_name: {name}-worker
    command: ["sleep", "infinity"]
    init: true

volumes:
  app-data:
"""


def existing_app(project) -> str:
    """Give the throwaway project a compose file in the style above and point the test environment at it."""
    text = COMPOSE.format(name=project.name, base_image=BASE_IMAGE)
    project.write("docker-compose.yml", text)
    project.commit("the app's own compose file")
    project.configure(app_service="web", environments={"test": {"compose_file": "docker-compose.yml"}})
    return text


def inspect(container: str) -> dict:
    out = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


def test_a_compose_file_with_fixed_name_published_port_and_build_deploys_twice_as_it_is(project):
    written = existing_app(project)
    first = project.head()
    result = project.inv("deploy.test")
    assert "service web: image: the built tag, build: dropped" in result.stdout
    assert "proxy service added, publishing" in result.stdout
    assert project.health()["revision"] == first

    (app,) = project.containers(service="web")
    details = inspect(app)
    assert details["Name"].lstrip("/") != f"{project.name}-web", "the fixed container_name was dropped"
    assert not any(details["HostConfig"]["PortBindings"] or {}), "the app publishes no host port"
    assert details["Config"]["Image"] == f"{project.name}:{first[:12]}", "the built, verified tag runs"
    (worker,) = project.containers(service="worker")
    assert inspect(worker)["Name"].lstrip("/") == f"{project.name}-worker", "other services stay as written"

    project.write("app/adopted.txt", "second release\n")
    second = project.commit("second release")
    with Load(project.url + "/api/health", rate=20, max_seconds=240) as load:
        load.wait(1.0)
        project.inv("deploy.test")
        load.wait(2.0)
    report = load.report()
    assert report.failed == 0, report.describe()
    assert {rev for _, rev in report.revisions()} == {first, second}, report.revisions()
    assert report.last_revision() == second
    assert project.health()["revision"] == second
    assert project.containers(service="worker") == [worker], "the worker was not recreated by the rollout"
    assert (project.path / "docker-compose.yml").read_text() == written, "the user's file is untouched"
    assert subprocess.run(["git", "status", "--porcelain"], cwd=project.path, capture_output=True,
                          text=True).stdout == ""

    # A rollback writes the override for the release it goes back to.
    project.inv("deploy.rollback")
    assert project.health()["revision"] == first
    override_file = project.path / ".deploy" / "test" / "compose.override.yml"
    assert f"image: ${{APP_IMAGE:-{project.name}:{first[:12]}}}" in override_file.read_text()


def test_over_ssh_the_override_is_written_on_the_host_and_used_by_day_two_tasks(project, sshd, tmp_path):
    existing_app(project)
    prod = configure_prod(project, sshd, tmp_path)
    prod.use(compose_file="docker-compose.yml")
    result = prod.deploy()
    on_host = prod.srv / "state" / "compose.override.yml"
    assert f"with {on_host}: service web:" in result.stdout
    assert f"image: ${{APP_IMAGE:-{project.name}:{project.head()[:12]}}}" in on_host.read_text()
    assert project.health()["revision"] == project.head()
    status = prod.inv("deploy.status", "--host", "prod")
    assert "proxy" in status.stdout
    logs = prod.inv("deploy.logs", "--host", "prod", "--service", "proxy", "--tail", "3")
    assert logs.returncode == 0


def test_logs_and_restart_of_the_proxy_use_the_override(project):
    existing_app(project)
    project.inv("deploy.test")
    logs = project.inv("deploy.logs", "--service", "proxy", "--tail", "5")
    assert logs.returncode == 0
    project.inv("deploy.restart", "--service", "proxy")
    assert project.health()["revision"] == project.head()


def test_dry_run_prints_the_override_and_changes_nothing(project):
    existing_app(project)
    result = project.inv("--dry", "deploy.test")
    override_file = project.path / ".deploy" / "test" / "compose.override.yml"
    assert f"write {override_file}" in result.stderr
    assert f"--file {override_file}" in result.stderr
    assert not override_file.exists()
    assert project.containers(service="web") == []


# --- the override against compose's own merge -----------------------------------------------------------


def settings_for(root: Path, **deploy) -> config.Settings:
    (root / "Dockerfile").write_text("FROM scratch\n")
    raw = {"app_name": "shop", "app_service": "web", "proxy_image": PROXY_IMAGE,
           "environments": {"test": {"compose_file": "docker-compose.yml", "public_port": 8001}}, **deploy}
    return config.load(raw, "test", root=root)


def merged(root: Path, user: str, **deploy) -> dict:
    """Write ``user`` as the compose file, render the override for it and return compose's merged config."""
    (root / "docker-compose.yml").write_text(user)
    settings = settings_for(root, **deploy)
    doc = compose_file.load(user, "docker-compose.yml")
    app = compose_file.app_service(doc, settings.app_service, "docker-compose.yml")
    has_proxy = compose_file.has_service(doc, settings.proxy_service)
    (root / "override.yml").write_text(override.render(doc, app, settings, "shop:abc123", has_proxy=has_proxy))
    out = subprocess.run(["docker", "compose", "--project-name", "merge-check", "--file", "docker-compose.yml",
                          "--file", "override.yml", "config", "--format", "json"], cwd=root, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_compose_merges_the_override_as_intended(tmp_path):
    cache = """
  cache:
    image: redis:7
    container_name: shop-cache
    ports: ["6379:6379"]
"""
    user = COMPOSE.format(name="shop", base_image="busybox").replace("\nvolumes:", cache + "\nvolumes:")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "development.env").write_text("APP_ENV=development\n")
    result = merged(tmp_path, user)
    web, proxy, cache = (result["services"][name] for name in ("web", "proxy", "cache"))
    assert web["image"] == "shop:abc123"
    assert "build" not in web and "container_name" not in web and "ports" not in web
    assert web["healthcheck"]["test"][1] == "curl" and web["restart"] == "unless-stopped"
    assert [(p["published"], p["target"]) for p in proxy["ports"]] == [("8001", 80)]
    assert proxy["image"] == PROXY_IMAGE
    assert proxy["command"][-3:] == ["/etc/nginx/upstream/app.conf", "web", "8000"]
    assert proxy["restart"] == "unless-stopped", "the proxy comes back after a reboot like the app"
    content = result["configs"][proxy["configs"][0]["source"]]["content"]
    assert "include /etc/nginx/upstream/app.conf;" in content
    assert "$host" in content, "nginx variables survive compose's interpolation"
    assert (cache["container_name"], cache["ports"][0]["published"]) == ("shop-cache", "6379"), "untouched"


def test_the_proxy_joins_the_app_networks_and_keeps_a_loopback_binding(tmp_path):
    user = """\
services:
  web:
    image: shop:latest
    ports: ["127.0.0.1:${WEB_PORT:-9000}:9000"]
    networks: [backend]
  db:
    image: postgres:16
    networks: [backend]
networks:
  backend:
"""
    result = merged(tmp_path, user, app_port=9000)
    proxy = result["services"]["proxy"]
    assert set(proxy["networks"]) == {"backend"}
    assert proxy["ports"][0]["host_ip"] == "127.0.0.1"
    assert proxy["command"][-1] == "9000"


@pytest.mark.parametrize(("ports", "dotenv", "expected"), [
    (["10.0.0.5:8000:8000"], "", ["10.0.0.5"]),
    (["${BIND_IP}:8000:8000"], "BIND_IP=10.0.0.7\n", ["10.0.0.7"]),
    (["${BIND_IP:-192.168.1.4}:8000:8000"], "", ["192.168.1.4"]),
    (["[fd00::5]:8000:8000"], "", ["fd00::5"]),
    ([{"target": 8000, "published": 8000, "host_ip": "${BIND_IP}"}], "BIND_IP=10.0.0.9\n", ["10.0.0.9"]),
    (["10.0.0.5:8000:8000", "127.0.0.1:8000:8000"], "", ["10.0.0.5", "127.0.0.1"]),
    (["10.0.0.5:8000:8000", "8001:8000"], "", [""]),
    (["8000:8000"], "", [""]),
])
def test_the_proxy_listens_where_the_app_listened_never_wider(tmp_path, ports, dotenv, expected):
    """A binding to a private address stays on it, written as the user wrote it so that compose interpolates it
    from the same environment (the project's .env here) as the user's own file."""
    (tmp_path / ".env").write_text(dotenv)
    user = yaml.safe_dump({"services": {"web": {"image": "shop:latest", "ports": ports}}})
    proxy = merged(tmp_path, user)["services"]["proxy"]
    assert sorted(p.get("host_ip", "") for p in proxy["ports"]) == sorted(expected)
    assert {p["published"] for p in proxy["ports"]} == {"8001"}


def test_a_file_that_has_its_own_proxy_gets_only_the_app_changes(tmp_path):
    user = yaml.safe_dump({"services": {
        "web": {"image": "shop:latest", "container_name": "shop"},
        "proxy": {"image": "nginx:1.27-alpine", "ports": ["80:80"]},
    }})
    result = merged(tmp_path, user)
    assert result["services"]["proxy"]["ports"][0]["published"] == "80", "the user's proxy is theirs"
    assert "configs" not in result or not result["configs"]
    assert result["services"]["web"]["image"] == "shop:abc123"
    assert "container_name" not in result["services"]["web"]
