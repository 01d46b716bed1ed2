"""Property tests.

- config: any malformed variable, or a missing required one, fails fast with a line naming it;
- logging: every line is JSON and every request has a sane request id, whatever bytes the client sent;
- health: any failing dependency makes readiness 503 and names exactly the failing checks;
- compose: every service has a health check, none has container_name, the app publishes no port.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import shutil
import string
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from app_testing import REPO, base_env, closed_port_url, raw_exchange
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.__main__ import main
from app.config import ConfigError, load
from app.health import DATABASE, upstream_name
from app.logs import setup_logging
from app.routes import ready
from app.server import App, Service
from app.web import Request

# Generation and in-process requests can be slow on a loaded CI machine; slowness is not what these test.
RELAXED = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
LETTERS = st.text(alphabet=string.ascii_letters + "!@#$%^&*()[]{}<>?/|~ ", min_size=1, max_size=20).filter(
    lambda s: s.strip() and any(c.isalpha() for c in s))


def _out_of(low: float, high: float, integers: bool) -> st.SearchStrategy[str]:
    if integers:
        return st.one_of(st.integers(max_value=int(low) - 1), st.integers(min_value=int(high) + 1)).map(str)
    return st.one_of(
        st.floats(max_value=low, exclude_max=True, allow_nan=False),
        st.floats(min_value=high, exclude_min=True, allow_nan=False),
        st.sampled_from(["nan", "inf", "-inf"]),
    ).map(repr).map(lambda s: s.replace("'", ""))


# For every variable with a constraint, values that must be rejected.
MALFORMED: dict[str, st.SearchStrategy[str]] = {
    "APP_ENV": LETTERS.filter(lambda s: s.strip().lower() not in ("development", "test", "production")),
    "APP_HOST": st.text(min_size=256, max_size=300),
    "APP_PORT": st.one_of(LETTERS, _out_of(1, 65535, True)),
    "APP_REVISION": st.one_of(
        st.text(min_size=1, max_size=40).filter(lambda s: not SANE_ID.match(s)),
        st.text(alphabet="abc123", min_size=129, max_size=200),
    ),
    "APP_DB_PATH": st.text(max_size=10).map(lambda s: f"/data/{s}\x00x"),
    "APP_LOG_DIR": st.text(max_size=10).map(lambda s: f"{s}\x00"),
    "APP_LOG_LEVEL": LETTERS.filter(lambda s: s.strip().upper() not in ("DEBUG", "INFO", "WARNING", "ERROR")),
    "APP_LOG_MAX_BYTES": st.one_of(LETTERS, _out_of(1024, 2**30, True)),
    "APP_LOG_BACKUP_COUNT": st.one_of(LETTERS, _out_of(0, 100, True)),
    "APP_DRAIN_SECONDS": st.one_of(LETTERS, _out_of(0, 3600, False)),
    "APP_BOOT_DELAY": st.one_of(LETTERS, _out_of(0, 600, False)),
    "APP_SECRET_KEY": st.text(min_size=1, max_size=15),
    "APP_DEMO_USER": st.text(alphabet="u", min_size=129, max_size=140),
    "APP_READY_UPSTREAMS": st.one_of(
        st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=12),
        st.builds("{}://{}/".format, st.sampled_from(["ftp", "file", "gopher"]),
                  st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=8)),
        st.just("http://"),
    ),
    "APP_READY_TIMEOUT": st.one_of(LETTERS, _out_of(0.1, 30, False)),
}

VALID: dict[str, st.SearchStrategy[str]] = {
    "APP_ENV": st.sampled_from(["development", "test", "TEST", " production "]),
    "APP_PORT": st.integers(1, 65535).map(str),
    "APP_LOG_LEVEL": st.sampled_from(["debug", "INFO", "Warning", "ERROR"]),
    "APP_DRAIN_SECONDS": st.floats(0, 3600).map(str),
    "APP_REVISION": st.text(alphabet="0123456789abcdef", min_size=7, max_size=40),
}


def _problems(environ: dict[str, str]) -> list[str]:
    try:
        load(environ)
    except ConfigError as exc:
        return exc.problems
    return []


@st.composite
def valid_env(draw) -> dict[str, str]:
    env = {name: draw(strategy) for name, strategy in VALID.items() if draw(st.booleans())}
    if env.get("APP_ENV", "").strip().lower() == "production":
        env["APP_SECRET_KEY"] = draw(st.text(min_size=16, max_size=40).filter(lambda s: s != ""))
    return env


def test_the_malformed_table_covers_every_constrained_setting():
    from app.config import SETTINGS

    unconstrained = {"APP_DEMO_PASSWORD"}  # any string is a password; pairing is tested separately
    assert {s.name for s in SETTINGS} - unconstrained == set(MALFORMED)


@given(base=valid_env(), name=st.sampled_from(sorted(MALFORMED)), data=st.data())
@RELAXED
def test_any_malformed_variable_fails_naming_it(base, name, data):
    value = data.draw(MALFORMED[name], label=name)
    environ = {**base, name: value}
    if name == "APP_DEMO_USER":
        environ["APP_DEMO_PASSWORD"] = "pw"
    problems = _problems(environ)
    assert len(problems) == 1, problems
    assert problems[0].startswith(name)
    assert "\n" not in problems[0]
    if "SECRET" in name:
        assert value not in problems[0] or len(value) < 3


@given(base=valid_env())
@RELAXED
def test_the_valid_environments_load(base):
    assert _problems(base) == []


@given(base=valid_env(), blank=st.sampled_from(["", None]))
@RELAXED
def test_a_missing_secret_key_in_production_is_named(base, blank):
    environ = {**base, "APP_ENV": "production"}
    environ.pop("APP_SECRET_KEY", None)
    if blank is not None:
        environ["APP_SECRET_KEY"] = blank
    problems = _problems(environ)
    assert [p.split()[0] for p in problems] == ["APP_SECRET_KEY"]


@given(environ=st.dictionaries(st.sampled_from(sorted(MALFORMED)), st.text(max_size=30), max_size=6))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_main_fails_fast_with_one_named_line_per_problem(environ):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--check"], environ)
    problems = _problems(environ)
    if not problems:
        assert code == 0
        assert re.match(r"^app ok: \d+ routes, revision \S+\n$", out.getvalue())
        return
    assert code == 2
    assert out.getvalue() == ""
    lines = err.getvalue().splitlines()
    assert lines == [f"config error: {p}" for p in problems]
    known = {name for name in MALFORMED} | {"APP_DEMO_PASSWORD"}
    for line in lines:
        assert line.split()[2].split("=")[0] in known


# --- logging -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_service() -> Iterator[Service]:
    root = Path(tempfile.mkdtemp(prefix="app-props-"))
    service = Service(replace(load(base_env(root)), port=0))
    service.start(poll_interval=0.02)
    yield service
    service.stop()
    shutil.rmtree(root, ignore_errors=True)


@given(
    header=st.binary(max_size=200).filter(lambda b: b"\r" not in b and b"\n" not in b),
    path=st.text(alphabet=string.ascii_letters + string.digits + "/-._~%?&=", max_size=40),
    method=st.sampled_from([b"GET", b"POST", b"HEAD", b"DELETE"]),
)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_request_logs_json_with_a_sane_request_id(shared_service, header, path, method):
    raw = (method + b" /" + path.encode() + b" HTTP/1.0\r\nX-Request-ID: " + header + b"\r\n"
           b"Content-Length: 0\r\n\r\n")
    answer = raw_exchange(shared_service.port, raw)
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    sent = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
    request_id = sent["X-Request-ID"]
    assert SANE_ID.match(request_id)
    given_id = header.decode("latin-1").strip()
    if SANE_ID.match(given_id):
        assert request_id == given_id

    log_file = Path(shared_service.config.log_dir) / "app.log"
    entries = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    mine = [e for e in entries if e["msg"] == "request" and e["request_id"] == request_id]
    assert mine, f"no log line for request id {request_id!r}"
    assert mine[-1]["method"] == method.decode()
    assert all(isinstance(e.get("request_id"), str) for e in entries if e["msg"] == "request")


# --- health --------------------------------------------------------------------------------------------


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def dependencies() -> Iterator[dict]:
    root = Path(tempfile.mkdtemp(prefix="app-deps-"))
    good_db = root / "good.db"
    from app.db import Database

    Database(str(good_db)).initialize()
    broken_db = root / "broken.db"
    broken_db.mkdir()  # a directory where the file should be: unusable even for root
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield {"good_db": str(good_db), "broken_db": str(broken_db),
           "good_url": f"http://127.0.0.1:{server.server_port}/up", "root": root}
    server.shutdown()
    server.server_close()
    shutil.rmtree(root, ignore_errors=True)


@given(db_ok=st.booleans(), upstreams_ok=st.lists(st.booleans(), max_size=4))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_failing_dependency_makes_ready_503_naming_it(dependencies, db_ok, upstreams_ok):
    urls = [f"{dependencies['good_url']}/{i}" if ok else closed_port_url(f"/{i}")
            for i, ok in enumerate(upstreams_ok)]
    env = base_env(dependencies["root"], APP_DB_PATH=dependencies["good_db" if db_ok else "broken_db"],
                   APP_READY_UPSTREAMS=",".join(urls), APP_READY_TIMEOUT="1")
    config = load(env)
    log = setup_logging(replace(config, log_dir=str(dependencies["root"] / "logs")))
    app = App(config, log)
    response = ready(app, Request("GET", "/health/ready", {}, {}, b"", "prop"))
    body = json.loads(response.body)

    expected_failed = ([] if db_ok else [DATABASE]) + [
        upstream_name(url) for url, ok in zip(urls, upstreams_ok, strict=True) if not ok]
    assert set(body["checks"]) == {DATABASE, *(upstream_name(url) for url in urls)}
    if expected_failed:
        assert response.status == 503
        assert body["status"] == "unready"
        assert sorted(body["failed"]) == sorted(expected_failed)
        for name in expected_failed:
            assert body["checks"][name]["status"] == "fail"
    else:
        assert response.status == 200
        assert body["status"] == "ready"
        assert "failed" not in body
    for handler in log.handlers:
        handler.close()


# --- compose -------------------------------------------------------------------------------------------

COMPOSE_FILES = ["docker-compose.test.yml", "docker-compose.beta.yml", "docker-compose.dev.yml"]
# The dev stack is the one place the app is published directly (no proxy in development).
APP_MAY_PUBLISH = {"docker-compose.dev.yml"}


def compose_problems(doc: dict, app_may_publish: bool = False) -> list[str]:
    problems = []
    for name, service in (doc.get("services") or {}).items():
        if not isinstance(service, dict) or not service.get("healthcheck", {}).get("test"):
            problems.append(f"{name}: no healthcheck")
        if isinstance(service, dict) and "container_name" in service:
            problems.append(f"{name}: container_name")
        if name == "app" and isinstance(service, dict) and service.get("ports") and not app_may_publish:
            problems.append("app: publishes ports")
    return problems


def _load(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_files_keep_the_invariants(name):
    doc = _load(name)
    assert "app" in doc["services"]
    assert compose_problems(doc, name in APP_MAY_PUBLISH) == []


def _mutations(doc: dict) -> st.SearchStrategy:
    services = sorted(doc["services"])
    return st.one_of(
        st.tuples(st.just("container_name"), st.sampled_from(services)),
        st.tuples(st.just("drop_healthcheck"), st.sampled_from(services)),
        st.tuples(st.just("empty_healthcheck"), st.sampled_from(services)),
        st.tuples(st.just("publish"), st.just("app")),
    )


@given(data=st.data(), name=st.sampled_from(["docker-compose.test.yml", "docker-compose.beta.yml"]))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_broken_invariant_is_caught(data, name):
    doc = copy.deepcopy(_load(name))
    kind, service = data.draw(_mutations(doc))
    target = doc["services"][service]
    if kind == "container_name":
        target["container_name"] = data.draw(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=20))
    elif kind == "drop_healthcheck":
        target.pop("healthcheck")
    elif kind == "empty_healthcheck":
        target["healthcheck"] = {}
    else:
        target["ports"] = [f"{data.draw(st.integers(1, 65535))}:8000"]
    assert compose_problems(doc), (kind, service)
