"""The load client against a real HTTP server on loopback whose answers change while it runs."""

import time

import pytest

from tests.support.http import ScriptedServer
from tests.support.load import Load, Report, Sample


class Flaky(ScriptedServer):
    """Answers 200 with a revision, or 503 while ``down`` is set."""

    def __init__(self):
        super().__init__()
        self.set(down=False, revision="r1")

    def set(self, *, down: bool, revision: str) -> None:
        self.answer(503 if down else 200, revision=revision)


@pytest.fixture
def flaky():
    server = Flaky()
    yield server
    server.close()


def test_counts_failures_the_outage_and_revision_changes(flaky):
    with Load(flaky.url, rate=50, max_seconds=5) as load:
        time.sleep(0.3)
        flaky.set(down=True, revision="r1")
        time.sleep(0.3)
        flaky.set(down=False, revision="r2")
        time.sleep(0.3)
    report = load.report()
    assert 30 <= report.requests <= 60
    assert 8 <= report.failed <= 22
    assert 0.2 < report.longest_outage < 0.6
    assert [rev for _, rev in report.revisions()] == ["r1", "r2"]
    assert "failed" in report.describe() and "HTTP 503" in report.describe()


def test_stops_itself_at_its_bounds(flaky):
    load = Load(flaky.url, rate=100, max_seconds=10, max_requests=15)
    load.start()
    load.wait(5)
    assert not load.running
    assert load.stop().requests == 15


def test_refused_connections_are_failures():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but never listening: connections are refused
        load = Load(f"http://127.0.0.1:{port}/", rate=50, max_requests=5, timeout=1)
        load.start()
        load.wait(3)
        report = load.stop()
    assert report.failed == report.requests == 5
    assert report.failures[0].error.startswith("ConnectionRefusedError")


def test_only_loopback_and_bounded_rates():
    with pytest.raises(ValueError, match="only to http://127.0.0.1"):
        Load("http://example.com/", rate=1)
    with pytest.raises(ValueError, match="rate"):
        Load("http://127.0.0.1:1/", rate=1000)


def test_outage_runs_until_the_next_success_finishes():
    samples = [Sample(0.0, 0.1, 200), Sample(1.0, 1.1, 502), Sample(1.5, 1.6, None, "refused"),
               Sample(2.0, 2.3, 200), Sample(3.0, 3.1, 500)]
    report = Report(samples, 3.1, 2)
    assert report.failed == 3
    assert report.longest_outage == pytest.approx(1.3)
