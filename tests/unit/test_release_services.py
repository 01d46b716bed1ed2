"""Every service that runs this repository's code is on the release: which services those are (read from the
compose file), the override that gives them the release's images, the order they are recreated in, how each is
proven, verify.build's checks of a service's own image, and deploy.status naming one left behind."""

from __future__ import annotations

import json

import pytest
import yaml

from droplet_deploy.core.errors import ConfigError
from droplet_deploy.engines import nginx
from droplet_deploy.engines.compose import compose_file, frontend, override
from droplet_deploy.engines.compose import override_file as adopt
from droplet_deploy.engines.compose import release_services as updating
from droplet_deploy.engines.snapshot import Container, Snapshot
from droplet_deploy.operations import status as status_op
from droplet_deploy.steps import images, verify
from droplet_deploy.steps.build import ServiceBuild, service_image
from droplet_deploy.transaction import clean
from droplet_deploy.transport.target import Result
from tests.unit.test_adopt import ScriptedTarget, on_stack, session_with, settings_for

STACK = """\
services:
  web:
    build: .
    expose: ["8000"]
  worker:
    build: {context: ., dockerfile: Dockerfile}
    command: ["python3", "-m", "app.worker"]
  scheduler:
    image: ${APP_IMAGE:-shop:latest}
  frontend:
    build:
      context: ./frontend
      dockerfile: Dockerfile.web
      target: production
      args: {NODE_ENV: production, API: "${API_URL:-/api}", UNSET: "${NOPE}"}
  db:
    image: postgres:16
"""


def services_of(text: str = STACK, compose: str = "docker-compose.yml") -> compose_file.ReleaseServices:
    return compose_file.release_services(compose_file.load(text, compose), "web", compose, context=".",
                                         dockerfile="Dockerfile", proxy="proxy")


def test_the_release_takes_every_service_on_the_apps_image_and_every_one_built_of_its_own():
    found = services_of()
    assert found.on_app_image == ("worker", "scheduler")
    assert found.building_like_app == ("worker",)
    assert found.built == (ServiceBuild("frontend", "frontend", "frontend/Dockerfile.web", "production",
                                        {"NODE_ENV": "production", "API": "/api"}),)
    assert found.names == ("worker", "scheduler", "frontend")  # db: an image of someone else's, left as written


def test_build_paths_resolve_from_the_compose_files_directory():
    text = "services:\n  web: {build: ..}\n  front: {build: ../web}\n  same: {build: {context: ..}}\n"
    found = services_of(text, "deploy/compose.yml")
    assert found.on_app_image == ("same",)
    assert found.built == (ServiceBuild("front", "web", "web/Dockerfile"),)


def test_the_override_names_the_release_images_of_every_service(tmp_path):
    settings = settings_for(tmp_path, STACK)
    doc = compose_file.load(STACK, "docker-compose.yml")
    app = compose_file.app_service(doc, "web", "docker-compose.yml")
    text = override.render(doc, app, settings, "shop:3f2c1a9b0d4e", has_proxy=False, others=services_of())
    services = yaml.safe_load(text.replace("!reset", ""))["services"]
    assert services["worker"]["image"] == "${APP_IMAGE:-shop:3f2c1a9b0d4e}"
    assert services["frontend"]["image"] == "shop-frontend:3f2c1a9b0d4e"
    assert "frontend:\n    image: shop-frontend:3f2c1a9b0d4e\n    build: !reset null\n" in text
    assert "scheduler" not in services and "db" not in services  # its ${APP_IMAGE} is set already; not ours
    assert service_image(settings, "Frontend", "abc") == "shop-frontend:abc"


def test_a_fit_app_with_a_built_service_still_gets_an_override(tmp_path):
    text = "services:\n  web: {image: '${APP_IMAGE}', expose: ['8000']}\n  proxy: {image: nginx}\n" \
           "  frontend: {build: ./frontend}\n"
    target = ScriptedTarget(text, "2.40.3")
    session = session_with(target, settings_for(tmp_path, text))
    item = adopt.prepare(*on_stack(session), "shop:abc")
    assert item.ok and "service frontend: its image built by the toolkit (frontend/Dockerfile)" in item.detail
    assert session.backend.built_services() == (ServiceBuild("frontend", "frontend", "frontend/Dockerfile"),)


def test_services_first_must_name_a_service_on_the_release(tmp_path):
    target = ScriptedTarget(STACK, "2.40.3")
    session = session_with(target, settings_for(tmp_path, STACK, services_first=["db"]))
    item = adopt.prepare(*on_stack(session), "shop:abc")
    assert not item.ok
    assert "deploy.services_first names db, which the release does not update (it updates: worker, scheduler, " \
           "frontend); list only those" in item.detail
    assert target.written == {}


def test_services_first_go_before_the_switch_in_their_order_the_rest_after_in_the_files(tmp_path):
    settings = settings_for(tmp_path, STACK, services_first=["scheduler", "worker"])
    assert updating.in_order(settings, ("worker", "scheduler", "frontend")) == (["scheduler", "worker"],
                                                                                ["frontend"])


def container(service: str, revision: str | None, *, state: str = "running", health: str | None = None,
              number: int = 1) -> Container:
    return Container(id=f"{service}{number}", name=f"shop-test-{service}-{number}", service=service,
                     image=f"shop-{service}:{(revision or 'x')[:12]}", revision=revision, state=state,
                     health=health, started_at="2026-12-03T08:00:00Z", number=number, addresses=())


def snapshot(*containers: Container) -> Snapshot:
    return Snapshot("web", "proxy", containers)


def test_a_service_counts_as_the_release_when_every_container_carries_it_and_is_healthy():
    rev, old = "a" * 40, "b" * 40
    assert updating.judge(snapshot(container("frontend", rev, health="healthy")), "frontend", rev) is None
    assert updating.judge(snapshot(container("worker", rev)), "worker", rev) is None  # no health check: running
    starting = updating.judge(snapshot(container("frontend", rev, health="starting")), "frontend", rev)
    assert starting is not None and not starting.final and "is starting" in starting.text
    stale = updating.judge(snapshot(container("worker", rev), container("worker", old, number=2)), "worker", rev)
    assert stale is not None and stale.final
    assert stale.text == f"shop-test-worker-2 runs shop-worker:{old[:12]}, labelled revision {old[:12]}, not {rev[:12]}"
    exited = updating.judge(snapshot(container("worker", rev, state="exited")), "worker", rev)
    assert exited is not None and exited.final
    assert updating.judge(snapshot(), "worker", rev).text == "no container was created"


def sections(**exits: tuple[int, str]) -> dict[str, verify.Ran]:
    base = {"bytecode": (0, ""), "user": (0, "10001"), "env": (0, ""), "imports": (1, "")}
    return {name: verify.Ran(*exits.get(name, base[name])) for name in verify.verify_cmd.SECTIONS}


def test_a_services_own_image_is_checked_for_user_env_and_in_a_python_image_bytecode():
    ok = list(verify.judge_service(sections(), "/srv/www"))
    assert [(c.name, c.ok, c.detail) for c in ok] == [
        ("no bytecode", True, "not a Python image"), ("non-root user", True, "uid 10001"),
        ("no .env inside", True, "no .env file in the image")]
    python = list(verify.judge_service(sections(imports=(0, "/usr/bin/python3"),
                                                bytecode=(0, "/srv/api/x.pyc\n")), "/srv/api"))
    assert (python[0].ok, python[0].detail) == (False, "found /srv/api/x.pyc")
    root = list(verify.judge_service(sections(user=(0, "0"), env=(0, "/srv/www/.env\n")), "/srv/www"))
    assert [c.ok for c in root] == [True, False, False]


def status_of(*containers: Container) -> status_op.Status:
    serving = next(c for c in containers if c.service == "web")
    return status_op.Status(env="test", where="local", release_dir=None, containers=list(containers),
                            upstream=serving.name, serving=serving, health_url="", health=None,
                            lock_present=False, holder=None, holder_gone=False, releases=[], now=0.0)


def test_status_names_a_service_left_on_another_revision():
    rev, old = "a" * 40, "b" * 40
    found = status_of(container("web", rev), container("worker", old), container("db", None),
                      container("frontend", rev), container("worker", old, state="exited", number=2))
    lines = status_op.render(found)
    warnings = [line for line in lines if "warning:" in line]
    assert warnings == [f"  warning: worker (shop-test-worker-1) runs revision {old[:12]}, the app {rev[:12]}: a "
                        "deploy or `inv deploy.restart --service worker` brings it to the app's release"]
    data = status_op.as_json(found)
    assert data["behind"] == [{"service": "worker", "name": "shop-test-worker-1", "revision": old}]
    assert data["services"] == {"web": rev, "worker": old, "db": None, "frontend": rev}
    assert not status_op.behind(status_of(container("web", rev), container("worker", rev)))


class ImagesTarget:
    """Answers `docker image ls <repository>` from a fixed list; records what it removes."""

    name, dry = "fake", False

    def __init__(self, listing: dict[str, list[tuple[str, str]]]):
        self.listing, self.removed = listing, []

    def probe(self, argv, *, check=False, timeout=None):
        rows = [json.dumps({"Tag": tag, "ID": tag, "CreatedAt": created}) for tag, created in self.listing[argv[3]]]
        return Result(tuple(argv), 0, "\n".join(rows), "")

    def run(self, argv, *, check=True, **_):
        self.removed += list(argv[3:])


def test_a_services_images_are_kept_exactly_as_long_as_the_apps(tmp_path):
    settings = settings_for(tmp_path, STACK)
    target = ImagesTarget({"shop": [("aaa", "2026-12-03 08:00"), ("bbb", "2026-12-03 09:00")],
                           "shop-frontend": [("aaa", "2026-12-03 08:00"), ("old", "2026-12-01 08:00"),
                                             ("bbb", "2026-12-03 09:00"), ("run", "2026-11-01 08:00")]})
    removed = images.prune_services(target, settings, ["frontend"], {"shop-frontend:run"})  # type: ignore[arg-type]
    assert removed == ["shop-frontend:old"] and target.removed == ["shop-frontend:old"]


FRONT_STACK = """\
services:
  web: {build: ., expose: ["8000"]}
  frontend:
    build: ./frontend
    container_name: shop-front
    ports: ["80:8080"]
"""


def test_the_frontend_shape_routes_api_to_the_app_and_the_rest_to_a_frontend_rolled_like_it(tmp_path):
    settings = settings_for(tmp_path, FRONT_STACK, frontend_service="frontend", frontend_port=8080)
    doc = compose_file.load(FRONT_STACK, "docker-compose.yml")
    app = compose_file.app_service(doc, "web", "docker-compose.yml")
    text = override.render(doc, app, settings, "shop:abc", has_proxy=False, others=services_of(FRONT_STACK))
    assert "frontend:\n    image: shop-frontend:abc\n    build: !reset null\n    container_name: !reset null\n" \
           "    ports: !reset []\n" in text
    proxy = yaml.safe_load(text.replace("!reset", ""))["services"]["proxy"]
    assert proxy["depends_on"] == ["web", "frontend"]
    assert proxy["command"][-6:] == ["/etc/nginx/upstream/app.conf", "web", "8000",
                                     "/etc/nginx/upstream/frontend.conf", "frontend", "8080"]
    config = nginx.routed_config("/u/app.conf", "/u/frontend.conf", "/api/")
    assert "location /api/ {\n        proxy_pass http://app_upstream;" in config
    assert "location / {\n        proxy_pass http://frontend_upstream;" in config
    assert "include /u/frontend.conf;" in config and config.count("{") == config.count("}")
    rolled = frontend.settings_for(settings)
    assert (rolled.app_service, rolled.app_port, rolled.upstream_file, rolled.health_path, rolled.health_revision) \
        == ("frontend", 8080, "/etc/nginx/upstream/frontend.conf", "/", "label")


def test_the_frontend_shape_is_refused_in_one_line_where_it_cannot_work(tmp_path):
    doc = compose_file.load(FRONT_STACK, "docker-compose.yml")
    missing = settings_for(tmp_path, FRONT_STACK, frontend_service="spa")
    assert frontend.problems(doc, missing, has_proxy=False) == [
        "deploy.frontend_service is 'spa', which is not a service of its own in the file (services: web, frontend); "
        "name the frontend's service"]
    own_proxy = settings_for(tmp_path, FRONT_STACK, frontend_service="frontend")
    assert "the file has its own 'proxy'" in frontend.problems(doc, own_proxy, has_proxy=True)[0]
    assert frontend.problems(doc, settings_for(tmp_path, FRONT_STACK), has_proxy=True) == []
    with pytest.raises(ConfigError, match="api_path.*nginx would misread"):
        settings_for(tmp_path, FRONT_STACK, api_path="/api/;return")


def test_the_disk_counts_as_low_only_under_a_threshold_that_is_set_and_a_size_that_was_read():

    assert clean.low(4096, 1000) and not clean.low(4096, 5000)
    assert not clean.low(0, 10) and not clean.low(4096, None)
    assert clean.mb(412_504_320) == "412.5 MB"


def test_the_copy_of_the_compose_file_a_release_kept_is_read_as_the_project_sees_it(tmp_path):
    target = ScriptedTarget(STACK, "2.40.3")
    session = session_with(target, settings_for(tmp_path, STACK))
    kept = session.backend.stack
    kept.compose_file = str(tmp_path / ".deploy" / "test" / "releases" / "r1" / "docker-compose.yml")
    found = adopt.read_release_services(session, kept)
    assert found.on_app_image == ("worker", "scheduler")
    assert [b.context for b in found.built] == ["frontend"]
