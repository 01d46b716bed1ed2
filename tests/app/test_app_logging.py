"""JSON request logs, request ids, secret masking and log rotation."""

from __future__ import annotations

import json
import logging
import re

import pytest

from app.config import Config
from app.logs import JsonFormatter, request_id_from, setup_logging

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_request_id_from_the_caller_is_kept_and_echoed(service):
    response = service.get("/health/live", headers={"X-Request-ID": "deploy-42.check_A"})
    assert response.headers["X-Request-ID"] == "deploy-42.check_A"
    line = [entry for entry in service.log_lines() if entry["msg"] == "request"][-1]
    assert line["request_id"] == "deploy-42.check_A"


def test_request_id_is_generated_when_absent(service):
    first = service.get("/health/live").headers["X-Request-ID"]
    second = service.get("/health/live").headers["X-Request-ID"]
    assert HEX32.match(first) and HEX32.match(second)
    assert first != second


@pytest.mark.parametrize("header", ["has space", "x" * 129, "semi;colon", "<script>", "a/b", "tab\there"])
def test_insane_request_ids_are_replaced(service, header):
    response = service.get("/health/live", headers={"X-Request-ID": header})
    assert HEX32.match(response.headers["X-Request-ID"])


def test_every_request_line_has_the_documented_fields(service):
    service.get("/")
    service.post("/api/quotes", json={"text": ""})
    service.get("/missing")
    lines = [entry for entry in service.log_lines() if entry["msg"] == "request"]
    assert [(entry["method"], entry["path"], entry["status"]) for entry in lines] == [
        ("GET", "/", 200), ("POST", "/api/quotes", 400), ("GET", "/missing", 404),
    ]
    for entry in lines:
        assert {"ts", "level", "msg", "method", "path", "status", "duration_ms", "request_id"} <= entry.keys()
        assert entry["level"] == "INFO"
        assert entry["duration_ms"] >= 0


def test_query_strings_stay_out_of_the_log(service):
    service.get("/api/quotes", params={"token": "q-secret-value"})
    assert "q-secret-value" not in service.log_path.read_text()


def test_stdout_gets_the_same_json_lines(service, capsys):
    service.get("/health/live", headers={"X-Request-ID": "on-stdout"})
    out = capsys.readouterr().out.splitlines()
    entries = [json.loads(line) for line in out if line.strip()]
    assert any(entry.get("request_id") == "on-stdout" for entry in entries)


def test_secrets_are_masked_in_the_startup_config_line(tmp_path, capsys):
    from app_testing import base_env

    from app.config import load

    config = load(base_env(tmp_path, APP_SECRET_KEY="secret-marker-value-1234",
                           APP_DEMO_USER="demo", APP_DEMO_PASSWORD="password-marker-5678",
                           APP_READY_UPSTREAMS="http://user:url-marker-999@127.0.0.1:9/x"))
    log = setup_logging(config)
    log.info("starting", extra={"config": config.masked()})
    for handler in log.handlers:
        handler.close()
    written = (tmp_path / "logs" / "app.log").read_text() + capsys.readouterr().out
    for marker in ("secret-marker-value-1234", "password-marker-5678", "url-marker-999"):
        assert marker not in written
    entry = json.loads(written.splitlines()[0])
    assert entry["config"]["APP_SECRET_KEY"] == "***"
    assert entry["config"]["APP_DEMO_PASSWORD"] == "***"
    assert entry["config"]["APP_DEMO_USER"] == "demo"
    assert entry["config"]["APP_READY_UPSTREAMS"] == ["http://user:***@127.0.0.1:9/x"]


def test_formatter_masks_any_secret_named_field():
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", (), None)
    record.api_token = "tok"
    record.nested = {"DB_PASSWORD": "pw", "plain": "ok"}
    record.user = "visible"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["api_token"] == "***"
    assert entry["nested"] == {"DB_PASSWORD": "***", "plain": "ok"}
    assert entry["user"] == "visible"


def test_unwritable_log_dir_falls_back_to_stdout_and_says_so_once(start_service, tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file where the log directory should be")
    running = start_service(APP_LOG_DIR=str(blocker / "logs"))
    running.get("/health/live")
    running.get("/health/live")
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    notices = [entry for entry in entries if "stdout only" in entry["msg"]]
    assert len(notices) == 1
    assert notices[0]["level"] == "WARNING"
    assert sum(entry["msg"] == "request" for entry in entries) == 2


def test_log_file_rotates_by_size(start_service, tmp_path):
    running = start_service(APP_LOG_MAX_BYTES="1024", APP_LOG_BACKUP_COUNT="2")
    for _ in range(40):
        running.get("/health/live")
    names = sorted(path.name for path in (tmp_path / "logs").iterdir())
    assert names == ["app.log", "app.log.1", "app.log.2"]
    for path in (tmp_path / "logs").iterdir():
        assert path.stat().st_size <= 1024
        for line in path.read_text().splitlines():
            json.loads(line)


def test_log_level_filters(start_service):
    running = start_service(APP_LOG_LEVEL="warning")
    running.get("/health/live")
    assert running.log_lines() == []


def test_request_id_from_rules():
    assert request_id_from(" abc ") == "abc"
    assert request_id_from("A" * 128) == "A" * 128
    assert HEX32.match(request_id_from("A" * 129))
    assert HEX32.match(request_id_from(None))
    assert HEX32.match(request_id_from(""))


def test_a_fresh_logger_per_service_leaves_global_logging_alone(tmp_path):
    before = list(logging.getLogger().handlers), list(logging.getLogger("app").handlers)
    setup_logging(Config(log_dir=str(tmp_path)))
    assert (list(logging.getLogger().handlers), list(logging.getLogger("app").handlers)) == before
