"""Reading a user's compose file and planning the override that lets it deploy as it is (droplet_deploy/engines/compose/)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from pathlib import Path

import pytest
import yaml

from droplet_deploy.core import config
from droplet_deploy.core.errors import ComposeFileError
from droplet_deploy.engines.compose import checks, compose_file, override
from droplet_deploy.engines.compose import override_file as adopt
from droplet_deploy.engines.compose.backend import ComposeBackend
from droplet_deploy.engines.compose.compose_file import Port, parse_port
from droplet_deploy.engines.compose.stack import Stack
from droplet_deploy.session import Session
from droplet_deploy.transport.target import Result

REPO = Path(__file__).resolve().parents[2]

EXISTING = """\
services:
  web:
    build: .
    container_name: shop
    ports: ["8000:8000"]
    healthcheck:
      test: ["CMD", "curl", "-fsS", "http://127.0.0.1:8000/api/health"]
    restart: always
  db:
    image: postgres:16
    container_name: shop-db
"""


def settings_for(root: Path, compose_text: str = EXISTING, **deploy) -> config.Settings:
    (root / "docker-compose.yml").write_text(compose_text)
    (root / "Dockerfile").write_text("FROM scratch\n")
    raw = {"app_name": "shop", "app_service": "web",
           "environments": {"test": {"compose_file": "docker-compose.yml", "public_port": 8001}}, **deploy}
    return config.load(raw, "test", root=root)


def app_of(text: str, name: str = "web") -> compose_file.AppService:
    return compose_file.app_service(compose_file.load(text, "docker-compose.yml"), name, "docker-compose.yml")


@pytest.mark.parametrize(("entry", "expected"), [
    ("8000:8000", Port(8000, 8000, None, "tcp", "8000:8000")),
    ("127.0.0.1:8080:8000", Port(8000, 8080, "127.0.0.1", "tcp", "127.0.0.1:8080:8000", "127.0.0.1")),
    ("${BIND_IP}:8000:8000", Port(8000, 8000, None, "tcp", "${BIND_IP}:8000:8000", "${BIND_IP}")),
    ("8000", Port(8000, None, None, "tcp", "8000")),
    ("${PORT:-9000}:8000", Port(8000, 9000, None, "tcp", "${PORT:-9000}:8000")),
    ("${PORT}:8000", Port(8000, None, None, "tcp", "${PORT}:8000")),
    ("[::1]:8001:8000/udp", Port(8000, 8001, "::1", "udp", "[::1]:8001:8000/udp", "::1")),
    ("8000-8001:8000-8001", Port(None, None, None, "tcp", "8000-8001:8000-8001")),
    ("$(reboot); x:8000", Port(8000, None, None, "tcp", "$(reboot); x:8000")),
])
def test_short_port_entries(entry, expected):
    assert parse_port(entry) == expected


def test_long_port_entries():
    port = parse_port({"target": 8000, "published": "9000", "host_ip": "127.0.0.1", "protocol": "tcp"})
    assert (port.target, port.published, port.host_ip) == (8000, 9000, "127.0.0.1")


def test_the_app_service_facts():
    app = app_of(EXISTING)
    assert (app.container_name, app.has_build, app.image, app.restart) == ("shop", True, None, "always")
    assert app.published.published == 8000 and app.listens_on == (8000,)
    assert not app.image_is_deployed_tag
    assert app_of("services: {web: {image: '${APP_IMAGE:-shop:latest}', expose: ['8000', 9000]}}").listens_on \
        == (8000, 9000)


def test_compose_merge_tags_in_the_users_own_file_are_read():
    app = app_of("services:\n  web:\n    image: x\n    ports: !override ['9000:9000']\n")
    assert app.published.published == 9000


@pytest.mark.parametrize(("text", "message"), [
    ("services:\n  web: [\n", "docker-compose.yml at line 3"),
    ("version: '3'\n", "docker-compose.yml: no services"),
    ("services:\n  api: {image: x}\n  db: {image: y}\n", "no service 'web' (services: api, db)"),
])
def test_unreadable_files_are_one_clear_line(text, message):
    with pytest.raises(ComposeFileError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        app_of(text)
    assert "\n" not in str(caught.value)


def test_dockerfile_expose_lines():
    assert compose_file.dockerfile_exposed("FROM x\nEXPOSE 8000 9090/tcp\nexpose 8000\n") == (8000, 9090)
    assert compose_file.dockerfile_exposed("FROM x\n") == ()


def test_the_reference_compose_files_deploy_as_written(tmp_path):
    settings = settings_for(tmp_path, app_service="app")
    for name in ("docker-compose.test.yml", "docker-compose.beta.yml"):
        text = (REPO / name).read_text()
        app = app_of(text, "app")
        doc = compose_file.load(text, name)
        assert override.changes(app, has_proxy=compose_file.has_service(doc, "proxy"), settings=settings) == []


def test_an_existing_apps_file_needs_every_change(tmp_path):
    settings = settings_for(tmp_path)
    found = override.changes(app_of(EXISTING), has_proxy=False, settings=settings)
    assert [c.done.split()[0] for c in found] == ["image:", "build:", "container_name", "ports", "proxy"]
    assert "8000:8000" in found[3].done


def test_a_fixed_image_is_overridden_even_when_nothing_else_is_wrong(tmp_path):
    # Without it the stack would run shop:latest, never the tag that was built and verified.
    settings = settings_for(tmp_path)
    found = override.changes(app_of("services: {web: {image: 'shop:latest'}, proxy: {image: nginx}}"),
                             has_proxy=True, settings=settings)
    assert [c.done for c in found] == ["image: the built tag"]


def test_without_reset_support_every_edit_is_named(tmp_path):
    settings = settings_for(tmp_path)
    app = app_of(EXISTING)
    edits = override.manual_changes(app, override.changes(app, has_proxy=False, settings=settings))
    assert edits == [
        "service web: set `image: ${APP_IMAGE}` (the toolkit passes the tag it built and verified)",
        "service web: remove `container_name: shop` (a deploy runs two app containers side by side)",
        "service web: remove `ports:` (8000:8000): the proxy publishes the port",
        "add a `proxy` service: nginx including /etc/nginx/upstream/app.conf and publishing 8001 "
        "(example: docs/configuration.md#your-compose-file)",
    ]


@pytest.mark.parametrize(("text", "ok"), [
    ("2.40.3", True), ("v2.24.0-desktop.1", True), ("2.24", True), ("2.23.3", False), ("1.29.2", False),
    ("", False), ("docker-compose version", False),
])
def test_which_compose_can_apply_the_override(text, ok):
    assert override.can_override(override.parse_version(text)) is ok


def test_host_networking_and_a_wrong_app_port_block_the_deploy():
    assert "remove `network_mode: host`" in override.blockers(app_of("services: {web: {network_mode: host}}"))[0]
    assert override.port_problem(app_of("services: {web: {ports: ['8000:5000']}}"), 8000) == (
        "service web listens on 5000 (ports/expose), deploy.app_port is 8000; set deploy.app_port: 5000")
    assert override.port_problem(app_of("services: {web: {image: x}}"), 8000) is None


def test_the_rendered_override_keeps_shell_and_nginx_dollars_from_compose_interpolation(tmp_path):
    settings = settings_for(tmp_path)
    doc = compose_file.load(EXISTING, "docker-compose.yml")
    text = override.render(doc, app_of(EXISTING), settings, "shop:abc", has_proxy=False)
    assert "container_name: !reset null" in text and "ports: !reset []" in text and "build: !reset null" in text
    rendered = compose_file.load(text, "override")
    proxy = rendered["services"]["proxy"]
    assert proxy["command"][:2] == ["sh", "-c"] and '"$$1"' in proxy["command"][2]
    assert proxy["command"][3:] == ["proxy-start", "/etc/nginx/upstream/app.conf", "web", "8000"]
    assert proxy["restart"] == "always" and proxy["depends_on"] == ["web"]
    content = rendered["configs"]["deploy_proxy_nginx"]["content"]
    assert "proxy_set_header Host $$host;" in content and "$host;" not in content.replace("$$host", "")


def test_the_config_name_avoids_the_users_own(tmp_path):
    assert override.config_name({"configs": {"deploy_proxy_nginx": {}, "deploy_proxy_nginx_2": {}}}) \
        == "deploy_proxy_nginx_3"
    assert override.config_name({}) == "deploy_proxy_nginx"


# --- the preflight step ---------------------------------------------------------------------------------


class ScriptedTarget:
    """Stands in for a host whose compose version is given: only Compose 2.40 is installed here, and the
    branches for v1 and v2 before 2.24 must be tested too. Records what it was asked to run and write."""

    name = "fake"
    cwd = "/srv/shop/releases/1"
    echo = False

    def __init__(self, compose_text: str, version: str, files: set[str] | None = None, dry: bool = False):
        self.compose_text = compose_text
        self.version = version
        self.files = set(files or ())
        self.dry = dry
        self.ran: list[list[str]] = []
        self.written: dict[str, str] = {}

    def probe(self, argv, *, check=False, timeout=None) -> Result:
        argv = [str(a) for a in argv]
        if argv[-2:] == ["version", "--short"]:
            ok = argv[0] == "docker" if self.version.startswith("2") else argv[0] == "docker-compose"
            return Result(tuple(argv), 0 if ok else 127, self.version if ok else "", "")
        if argv[:2] == ["test", "-f"]:
            return Result(tuple(argv), 0 if argv[2] in self.files else 1, "", "")
        return Result(tuple(argv), 1, "", "not scripted")

    def run(self, argv, *, check=True, stream=False, timeout=None, does=None) -> Result:
        self.ran.append([str(a) for a in argv])
        return Result(tuple(argv), 0, "", "")

    def read_text(self, path: str) -> str | None:
        return self.compose_text

    def write_text(self, path: str, text: str, mode: int = 0o644) -> None:
        self.written[path] = text


def session_with(target: ScriptedTarget, settings: config.Settings) -> Session:
    return ComposeBackend(Session(settings, target, target)).session  # type: ignore[arg-type]


def on_stack(session: Session) -> tuple[Session, Stack]:
    return session, session.backend.stack


def test_with_compose_2_24_or_later_the_override_is_written_and_used(tmp_path):
    target = ScriptedTarget(EXISTING, "2.40.3")
    session = session_with(target, settings_for(tmp_path))
    item = adopt.prepare(*on_stack(session), "shop:abc")
    path = str(tmp_path / ".deploy" / "test" / "compose.override.yml")
    assert item.ok and path in item.detail and "container_name 'shop' dropped" in item.detail
    assert "services:\n  web:\n    image: ${APP_IMAGE:-shop:abc}\n" in target.written[path]
    assert session.backend.stack.overrides == (path,)
    assert session.backend.stack.compose("shop:abc").up()[-5:] == [
        "--file", "docker-compose.yml", "--file", path, "up", "--detach"][-5:]


def test_with_compose_v1_preflight_names_every_edit_and_writes_nothing(tmp_path):
    target = ScriptedTarget(EXISTING, "1.29.2")
    session = session_with(target, settings_for(tmp_path))
    item = adopt.prepare(*on_stack(session), "shop:abc")
    assert not item.ok
    assert item.detail.startswith("docker-compose 1.29.2 cannot apply the toolkit's compose override")
    for edit in ("remove `container_name: shop`", "remove `ports:` (8000:8000)", "set `image: ${APP_IMAGE}`",
                 "add a `proxy` service"):
        assert edit in item.detail
    assert target.written == {} and target.ran == []


def test_a_file_fit_as_written_removes_an_override_left_from_before(tmp_path):
    text = (REPO / "docker-compose.test.yml").read_text()
    settings = settings_for(tmp_path, text, app_service="app")
    stale = str(tmp_path / ".deploy" / "test" / "compose.override.yml")
    target = ScriptedTarget(text, "1.29.2", files={stale})
    session = session_with(target, settings)
    item = adopt.prepare(*on_stack(session), "shop:abc")
    assert item.ok and item.detail.startswith("docker-compose.yml deploys as written")
    assert target.ran == [["rm", "-f", "--", stale]]
    assert session.backend.stack.overrides == ()


def test_a_compose_file_problem_is_a_failed_item_not_a_traceback(tmp_path):
    target = ScriptedTarget("services:\n  api: {image: x}\n", "2.40.3")
    item = adopt.prepare(*on_stack(session_with(target, settings_for(tmp_path))), "shop:abc")
    assert not item.ok and "no service 'web' (services: api)" in item.detail


def test_session_finds_the_override_a_deploy_left(tmp_path):
    settings = settings_for(tmp_path)
    path = str(tmp_path / ".deploy" / "test" / "compose.override.yml")
    assert session_with(ScriptedTarget(EXISTING, "2.40.3", files={path}), settings).backend.stack.overrides == (path,)
    assert session_with(ScriptedTarget(EXISTING, "2.40.3"), settings).backend.stack.overrides == ()


def test_rendered_yaml_is_plain_yaml_for_other_readers(tmp_path):
    settings = settings_for(tmp_path)
    doc = compose_file.load(EXISTING, "docker-compose.yml")
    text = override.render(doc, app_of(EXISTING), settings, "shop:abc", has_proxy=True)
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load(text)  # compose's own tag: only loaders that know it (ours, compose) read it
    assert "proxy" not in compose_file.load(text, "override")["services"]


class SlowVersionTarget(ScriptedTarget):
    """A host whose `compose version` answers only once ``answer`` is set: what else ran before it did."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.answer = threading.Event()
        self.probed: list[list[str]] = []

    def probe(self, argv, *, check=False, timeout=None) -> Result:
        argv = [str(a) for a in argv]
        self.probed.append(argv)
        if argv[-2:] == ["version", "--short"]:
            assert self.answer.wait(10), "the version probe was never answered"
        elif argv[-2:] == ["config", "--quiet"]:
            program = next(a for a in argv[1:] if "=" not in a)  # after `env NAME=value ...`
            found = program == ("docker" if self.version.startswith("2") else "docker-compose")
            return Result(tuple(argv), 0 if found else 1, "", "" if found else "not a docker command")
        return super().probe(argv, check=check, timeout=timeout)


def test_the_compose_file_check_runs_beside_the_binarys_detection_not_after_it(tmp_path):
    target = SlowVersionTarget(EXISTING, "2.40.3")
    stack = session_with(target, settings_for(tmp_path)).backend.stack
    detecting = threading.Thread(target=lambda: stack.binary)
    detecting.start()
    checking = concurrent.futures.ThreadPoolExecutor(1).submit(checks.compose_file, stack, "shop:abc")
    deadline = time.monotonic() + 10
    while not any(a[-2:] == ["config", "--quiet"] for a in target.probed) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(a[-2:] == ["config", "--quiet"] for a in target.probed), "config waited for the version"
    target.answer.set()
    item = checking.result(10)
    detecting.join(10)
    assert item.ok, item.detail
    assert [a[5:7] for a in target.probed if a[-2:] == ["config", "--quiet"]] == [["docker", "compose"]]


def test_a_host_with_another_compose_binary_is_checked_again_with_the_one_found(tmp_path):
    target = SlowVersionTarget(EXISTING, "1.29.2")
    target.answer.set()
    stack = session_with(target, settings_for(tmp_path)).backend.stack
    item = checks.compose_file(stack, "shop:abc")
    assert item.ok, item.detail
    assert [a[5] for a in target.probed if a[-2:] == ["config", "--quiet"]] == ["docker", "docker-compose"]
