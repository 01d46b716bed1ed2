"""health.wait against a real HTTP server on loopback: no mocks of requests or sockets."""

import json
import threading
import time

import pytest

from droplet_deploy.core.errors import HealthRejected, HealthTimeout
from droplet_deploy.engines.snapshot import Container
from droplet_deploy.steps import health
from tests.conftest import free_port
from tests.support.http import ScriptedServer

REV = "a" * 40
OTHER = "b" * 40
NEW = health.Witness("myapp-test-app-2", REV)  # the container polled, its image labelled with REV
SHORT_SETTLE = 0.3  # keeps the fail-fast tests quick; test_body_mode_fails_fast_... uses the real default


@pytest.fixture
def server():
    s = ScriptedServer()
    s.answer(200, status="healthy", revision=REV)
    yield s
    s.close()


def plain(server, status=200, text="ok"):
    server.status, server.body = status, text
    server.headers = {"Content-Type": "text/plain"}


# --- the revision in the body ---------------------------------------------------------------------------------


def test_healthy_at_expected_revision_is_proven_by_the_body(server):
    verdict = health.wait(server.url, REV, timeout=5, interval=0.05, witness=NEW)
    assert verdict.ok and verdict.revision == REV
    assert verdict.proof == "health body", "an app that reports its revision keeps the end-to-end check"
    assert "proven by health body" in verdict.reason
    assert server.hits == 1


def test_wrong_revision_times_out_naming_both(server):
    server.body = json.dumps({"status": "healthy", "revision": OTHER})
    with pytest.raises(HealthTimeout) as info:
        health.wait(server.url, REV, timeout=0.6, interval=0.05)
    assert f"still serving revision {OTHER[:12]}, expected {REV[:12]}" in str(info.value)
    assert server.hits >= 3, "it kept polling until the deadline"


@pytest.mark.parametrize("mode", ["auto", "label"])
def test_a_reported_revision_that_differs_fails_even_when_the_label_matches(server, mode):
    server.body = json.dumps({"status": "healthy", "revision": OTHER})
    with pytest.raises(HealthTimeout, match="still serving revision"):
        health.wait(server.url, REV, timeout=0.6, interval=0.05, mode=mode, witness=NEW)


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


def test_a_5xx_page_keeps_waiting_and_is_reported(server):
    plain(server, 502, "<html>Bad Gateway</html>")
    with pytest.raises(HealthTimeout, match="HTTP 502, body is not JSON: '<html>Bad Gateway</html>'"):
        health.wait(server.url, REV, timeout=0.6, interval=0.05, witness=NEW)
    assert server.hits >= 3


def test_slow_answers_count_against_the_deadline(server):
    server.delay = 1.0
    started = time.monotonic()
    with pytest.raises(HealthTimeout, match="no answer within"):
        health.wait(server.url, REV, timeout=0.5, interval=0.05)
    assert time.monotonic() - started < 3


def test_connection_refused_keeps_waiting():
    url = f"http://127.0.0.1:{free_port()}/api/health"
    with pytest.raises(HealthTimeout, match="last seen: connection refused"):
        health.wait(url, REV, timeout=0.3, interval=0.05, witness=NEW)


def test_any_revision_accepts_a_healthy_answer(server):
    server.body = json.dumps({"status": "healthy", "revision": OTHER})
    assert health.wait(server.url, None, timeout=2, interval=0.05).revision == OTHER


# --- a 2xx without revision: the image label of the container that answered --------------------------------


@pytest.mark.parametrize("body", ["ok", '{"status": "ok"}', '{"status": "UP", "version": "1.2"}', ""])
def test_a_2xx_without_revision_is_proven_by_the_label_of_the_container(server, body):
    plain(server, 200, body)
    verdict = health.wait(server.url, REV, timeout=5, interval=0.05, witness=NEW)
    assert verdict.ok and verdict.revision == REV
    assert verdict.proof == "image label of myapp-test-app-2"
    assert f"healthy at revision {REV[:12]} (proven by image label of myapp-test-app-2)" == verdict.reason


def test_label_mode_proves_by_the_label_even_when_the_body_agrees(server):
    verdict = health.wait(server.url, REV, timeout=5, interval=0.05, mode="label", witness=NEW)
    assert verdict.proof == "image label of myapp-test-app-2"


def test_a_label_of_another_revision_keeps_waiting_like_another_body_revision(server):
    plain(server)
    with pytest.raises(HealthTimeout, match=f"image label of old-1 says revision {OTHER[:12]}, expected"):
        health.wait(server.url, REV, timeout=0.6, interval=0.05, witness=health.Witness("old-1", OTHER))
    assert server.hits >= 3


def test_an_image_without_the_label_cannot_prove_it(server):
    plain(server)
    with pytest.raises(HealthRejected, match="the image of app-1 has no revision label") as info:
        health.wait(server.url, REV, timeout=30, interval=0.05, settle=SHORT_SETTLE,
                    witness=health.Witness("app-1", None))
    assert "inv build" in str(info.value)


@pytest.mark.parametrize("mode", ["auto", "label"])
def test_with_no_container_known_a_2xx_without_revision_proves_nothing(server, mode):
    plain(server)
    with pytest.raises(HealthRejected) as info:
        health.wait(server.url, REV, timeout=30, interval=0.05, mode=mode, settle=SHORT_SETTLE)
    assert f"cannot prove revision {REV[:12]}" in str(info.value)
    assert "--revision any" in str(info.value)


def test_with_no_revision_asked_for_a_plain_2xx_is_healthy(server):
    plain(server)
    verdict = health.wait(server.url, None, timeout=5, interval=0.05)
    assert verdict.ok and verdict.reason == "healthy, revision not reported" and verdict.proof == ""


# --- answers that can never become valid fail fast, with the fix ---------------------------------------------


def test_body_mode_fails_fast_on_a_2xx_without_revision_naming_the_setting(server):
    plain(server)
    started = time.monotonic()
    with pytest.raises(HealthRejected) as info:
        health.wait(server.url, REV, timeout=60, interval=0.5, mode="body", witness=NEW)
    assert time.monotonic() - started < 5, "within seconds, not the 60 s timeout"
    message = str(info.value)
    assert "\n" not in message
    assert "HTTP 200 without a revision in the body ('ok') while health_revision is body" in message
    assert "report the revision in the health body" in message and "health_revision: auto" in message
    assert server.hits >= health.SETTLE_ANSWERS, "one answer alone does not fail a deploy"


def test_body_mode_rejects_json_without_revision(server):
    server.body = json.dumps({"status": "healthy"})
    with pytest.raises(HealthRejected, match=r"without a revision in the body \(JSON without revision\)"):
        health.wait(server.url, REV, timeout=30, interval=0.05, mode="body", witness=NEW, settle=SHORT_SETTLE)


@pytest.mark.parametrize(("status", "headers", "seen", "fix"), [
    (404, {}, "HTTP 404: nothing at the health path", "set health_path to a path the app answers"),
    (302, {"Location": "/login?next=/up"}, "HTTP 302: the health path redirects to /login?next=/up",
     "answers without a login or redirect"),
    (401, {"WWW-Authenticate": "Basic"}, "HTTP 401: the health path asks for a login", "without a login"),
    (403, {}, "HTTP 403: the health path asks for a login", "without a login"),
])
def test_never_valid_answers_fail_fast_with_the_fix(server, status, headers, seen, fix):
    plain(server, status, "Not Found" if status == 404 else "")
    server.headers.update(headers)
    started = time.monotonic()
    with pytest.raises(HealthRejected) as info:
        health.wait(server.url, REV, timeout=60, interval=0.05, witness=NEW, settle=SHORT_SETTLE)
    assert time.monotonic() - started < 5
    assert seen in str(info.value) and fix in str(info.value)


def test_a_redirect_is_judged_not_followed(server):
    plain(server, 302, "")
    server.headers = {"Location": server.url}  # following it would loop back here
    with pytest.raises(HealthRejected, match="redirects"):
        health.wait(server.url, REV, timeout=30, interval=0.1, witness=NEW, settle=SHORT_SETTLE)
    assert server.hits <= 10, "one request per check"


def test_a_never_valid_answer_during_boot_does_not_fail_the_wait(server):
    """A framework that listens before its routes are mounted answers 404 for a moment."""
    plain(server, 404, "Not Found")

    def routes_mounted():
        time.sleep(0.6)
        plain(server, 200, "ok")

    threading.Thread(target=routes_mounted).start()
    verdict = health.wait(server.url, REV, timeout=10, interval=0.05, witness=NEW)
    assert verdict.ok and server.hits > health.SETTLE_ANSWERS


def test_a_never_valid_answer_at_the_deadline_is_reported_with_its_fix(server):
    plain(server, 404, "Not Found")
    with pytest.raises(HealthRejected, match="set health_path"):
        health.wait(server.url, REV, timeout=0.3, interval=0.05, witness=NEW)


# --- the pure parts ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "mode", "witness", "ok", "final", "reason"), [
    (health.Answer(200, '{"status": "healthy", "revision": "x"}'), "auto", None, True, False,
     "healthy at revision x (proven by health body)"),
    (health.Answer(200, '{"status": "healthy", "revision": "x"}'), "body", None, True, False, "health body"),
    (health.Answer(200, '{"revision": "x"}'), "auto", None, True, False, "health body"),
    (health.Answer(200, '{"status": "starting", "revision": "x"}'), "auto", None, False, False, "status 'starting'"),
    (health.Answer(200, '{"status": "starting"}'), "auto", health.Witness("c", "x"), False, False, "'starting'"),
    (health.Answer(200, '{"status": "healthy"}'), "body", None, False, True, "JSON without revision"),
    (health.Answer(200, '{"status": "healthy"}'), "auto", health.Witness("c", "x"), True, False, "image label of c"),
    (health.Answer(204, ""), "auto", health.Witness("c", "x"), True, False, "image label of c"),
    (health.Answer(200, "[1, 2]"), "body", None, False, True, "'[1, 2]'"),
    (health.Answer(200, '{"status": "healthy", "revision": "x"}'), "label", None, False, True, "no container known"),
    (health.Answer(500, "boom"), "body", None, False, False, "HTTP 500, body is not JSON"),
    (health.Answer(503, "[1]"), "auto", None, False, False, "not a JSON object"),
    (health.Answer(307, "", "https://sso.example/"), "auto", None, False, True, "redirects to https://sso.example/"),
    (health.Answer(None, "connection refused"), "auto", None, False, False, "connection refused"),
])
def test_judge(answer, mode, witness, ok, final, reason):
    verdict = health.judge(answer, "x", mode=mode, witness=witness)
    assert (verdict.ok, verdict.final) == (ok, final)
    assert reason in verdict.reason
    assert bool(verdict.fix) == final, "every never-valid answer carries its fix"


def _container(name: str, revision: str | None) -> Container:
    return Container(id=name * 3, name=name, service="app", image="myapp:abc", revision=revision, state="running",
                     health=None, started_at="", number=1, addresses=("172.18.0.5",))


def test_routed_is_the_container_the_upstream_names():
    apps = [_container("myapp-test-app-1", OTHER), _container("myapp-test-app-2", REV)]
    assert health.routed(apps, "myapp-test-app-2") == health.Witness("myapp-test-app-2", REV)
    assert health.routed(apps, "app") is None, "the service name (first start) names no one container"
    assert health.routed(apps, None) is None
    assert health.routed([], "myapp-test-app-2") is None


# --- how often it checks ------------------------------------------------------------------------------------


class FakeTime:
    """A clock that moves only when the wait sleeps (each check itself takes no time), and the sleeps asked for."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_checks_every_twentieth_of_a_second_at_first_then_every_interval():
    fake = FakeTime()
    url = f"http://127.0.0.1:{free_port()}/api/health"  # nothing listens: refused until the deadline
    with pytest.raises(HealthTimeout):
        health.wait(url, REV, timeout=health.FAST_SECONDS + 5, interval=0.5, clock=fake.clock, sleep=fake.sleep)
    fast = [s for s in fake.sleeps if s == health.FAST_INTERVAL]
    assert fast and len(fast) >= health.FAST_SECONDS / health.FAST_INTERVAL - 1
    assert fake.sleeps == fast + [0.5] * (len(fake.sleeps) - len(fast)), "fast first, then the interval"
    assert fake.sleeps[-1] == 0.5


def test_an_interval_shorter_than_the_fast_one_is_kept():
    assert health.pause(0.0, 0.01) == 0.01
    assert health.pause(0.0, 2.0) == health.FAST_INTERVAL <= 0.1
    assert health.pause(health.FAST_SECONDS + 1, 2.0) == 2.0
