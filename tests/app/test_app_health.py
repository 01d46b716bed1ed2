"""Readiness and health against real dependencies: a broken database, dead and slow upstreams."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from app_testing import closed_port_url

from app.db import Database
from app.health import check_upstream, run_checks, summarize


class _Upstream(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.path.startswith("/slow"):
            time.sleep(3)
        status = 500 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def break_database(db_path) -> None:
    """Replace the database file with a directory: unusable even for root, unlike a chmod."""
    for suffix in ("", "-wal", "-shm"):
        path = db_path.parent / (db_path.name + suffix)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    db_path.mkdir()


def test_ready_and_health_turn_503_when_the_database_breaks(service, tmp_path):
    assert service.get("/health/ready").status_code == 200
    break_database(tmp_path / "data" / "app.db")

    ready = service.get("/health/ready")
    assert ready.status_code == 503
    data = ready.json()
    assert data["status"] == "unready"
    assert data["failed"] == ["database"]
    assert data["checks"]["database"]["status"] == "fail"
    assert data["checks"]["database"]["error"]

    health = service.get("/api/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    assert health.json()["failed"] == ["database"]
    assert service.get("/health/live").status_code == 200  # alive, just not ready


def test_a_deleted_database_is_not_silently_recreated(service, tmp_path):
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / "data" / f"app.db{suffix}").unlink(missing_ok=True)
    assert service.get("/health/ready").status_code == 503
    assert not (tmp_path / "data" / "app.db").exists()


def test_database_path_under_a_regular_file_starts_unhealthy(start_service, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    running = start_service(APP_DB_PATH=str(blocker / "app.db"))
    response = running.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]
    assert any(entry["msg"] == "database unusable at start" for entry in running.log_lines())
    assert running.post("/api/quotes", json={"text": "x"}).status_code == 500


def test_ready_names_the_failing_upstream(start_service, upstream):
    dead = closed_port_url("/health")
    running = start_service(APP_READY_UPSTREAMS=f"{upstream}/ok, {dead}")
    response = running.get("/health/ready")
    assert response.status_code == 503
    data = response.json()
    assert data["failed"] == [f"upstream {dead}"]
    assert data["checks"][f"upstream {upstream}/ok"]["status"] == "ok"
    assert data["checks"]["database"]["status"] == "ok"


def test_ready_passes_when_every_upstream_answers(start_service, upstream):
    running = start_service(APP_READY_UPSTREAMS=f"{upstream}/a,{upstream}/b")
    response = running.get("/health/ready")
    assert response.status_code == 200
    assert len(response.json()["checks"]) == 3


def test_an_upstream_error_status_fails_its_check(upstream):
    result = check_upstream(f"{upstream}/fail", timeout=2)
    assert not result.ok
    assert result.error == "HTTP 500"


def test_a_slow_upstream_is_cut_off_by_its_timeout(start_service, upstream):
    running = start_service(APP_READY_UPSTREAMS=f"{upstream}/slow", APP_READY_TIMEOUT="0.3")
    started = time.monotonic()
    response = running.get("/health/ready")
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert response.json()["failed"] == [f"upstream {upstream}/slow"]


def test_checks_run_concurrently(tmp_path, upstream):
    db = Database(str(tmp_path / "app.db"))
    db.initialize()
    started = time.monotonic()
    results = run_checks(db, [f"{upstream}/slow"] * 3, timeout=0.5)
    assert time.monotonic() - started < 1.4
    ok, body = summarize(results)
    assert not ok


def test_credentials_in_upstream_urls_are_not_shown(start_service, upstream):
    host = upstream.removeprefix("http://")
    running = start_service(APP_READY_UPSTREAMS=f"http://u:hunter2@{host}/ok")
    body = running.get("/health/ready").text
    assert "hunter2" not in body
    assert f"upstream http://u:***@{host}/ok" in body
