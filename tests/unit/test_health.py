"""health.wait against a real HTTP server on loopback: no mocks of requests or sockets."""

import json
import threading
import time

import pytest

from deploy import health
from deploy.errors import HealthTimeout
from tests.conftest import free_port
from tests.support.http import ScriptedServer

REV = "a" * 40
OTHER = "b" * 40


@pytest.fixture
def server():
    s = ScriptedServer()
    s.answer(200, status="healthy", revision=REV)
    yield s
    s.close()


def test_healthy_at_expected_revision(server):
    verdict = health.wait(server.url, REV, timeout=5, interval=0.05)
    assert verdict.ok and verdict.revision == REV
    assert server.hits == 1


def test_wrong_revision_times_out_naming_both(server):
    server.body = json.dumps({"status": "healthy", "revision": OTHER})
    with pytest.raises(HealthTimeout) as info:
        health.wait(server.url, REV, timeout=0.6, interval=0.05)
    assert f"still serving revision {OTHER[:12]}, expected {REV[:12]}" in str(info.value)
    assert server.hits >= 3, "it kept polling until the deadline"


def test_waits_through_a_revision_change(server):
    server.body = json.dumps({"status": "healthy", "revision": OTHER})
    lines = []

    def switch():
        time.sleep(0.4)
        server.body = json.dumps({"status": "healthy", "revision": REV})

    threading.Thread(target=switch).start()
    verdict = health.wait(server.url, REV, timeout=5, interval=0.05, progress=lines.append)
    assert verdict.ok
    assert any("still serving" in line for line in lines)
    assert "healthy at revision" in lines[-1]


def test_unhealthy_reports_status_and_failing_check(server):
    server.status = 503
    server.body = json.dumps({"status": "unhealthy", "revision": REV,
                              "checks": {"database": {"status": "fail"}, "disk": {"status": "ok"}}})
    with pytest.raises(HealthTimeout) as info:
        health.wait(server.url, REV, timeout=0.3, interval=0.05)
    assert "HTTP 503, status 'unhealthy' (failing: database)" in str(info.value)


def test_garbage_body_is_reported(server):
    server.body = "<html>Bad Gateway</html>"
    with pytest.raises(HealthTimeout, match="body is not JSON: '<html>Bad Gateway</html>'"):
        health.wait(server.url, REV, timeout=0.3, interval=0.05)


def test_slow_answers_count_against_the_deadline(server):
    server.delay = 1.0
    started = time.monotonic()
    with pytest.raises(HealthTimeout, match="no answer within"):
        health.wait(server.url, REV, timeout=0.5, interval=0.05)
    assert time.monotonic() - started < 3


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}/api/health"
    with pytest.raises(HealthTimeout, match="last seen: connection refused"):
        health.wait(url, REV, timeout=0.3, interval=0.05)


def test_any_revision_accepts_a_healthy_answer(server):
    server.body = json.dumps({"status": "healthy", "revision": OTHER})
    assert health.wait(server.url, None, timeout=2, interval=0.05).revision == OTHER


@pytest.mark.parametrize(("status", "body", "expected", "ok", "reason"), [
    (200, '{"status": "healthy", "revision": "x"}', "x", True, "healthy at revision x"),
    (200, '{"status": "healthy"}', "x", False, "reports no revision"),
    (200, '{"status": "starting", "revision": "x"}', "x", False, "status 'starting'"),
    (200, "[1, 2]", "x", False, "not a JSON object"),
    (None, "connection refused", "x", False, "connection refused"),
])
def test_judge(status, body, expected, ok, reason):
    verdict = health.judge(status, body, expected)
    assert verdict.ok is ok
    assert reason in verdict.reason
