"""Graceful stop: in-flight requests finish, new connections are refused, the drain is bounded."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from app_testing import REPO, base_env, free_port, subprocess_env


def _in_background(func):
    result: dict = {}

    def target():
        try:
            result["value"] = func()
        except Exception as exc:  # handed back to the test thread
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def _wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_stop_lets_an_in_flight_request_finish(service):
    thread, result = _in_background(lambda: service.get("/api/slow", params={"ms": "800"}))
    _wait_for(lambda: service.service.httpd.in_flight == 1)
    started = time.monotonic()
    assert service.service.stop() is True
    assert time.monotonic() - started >= 0.5  # it really waited for the request
    thread.join(5)
    assert result["value"].status_code == 200
    assert result["value"].json() == {"slept_ms": 800}
    messages = [entry["msg"] for entry in service.log_lines()]
    assert messages.index("draining") < messages.index("request") < messages.index("drained")


def test_new_connections_are_refused_once_stopping(service):
    service.service.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(service.url + "/health/live", timeout=2)


def test_drain_is_bounded(start_service):
    running = start_service(APP_DRAIN_SECONDS="0.3")
    thread, result = _in_background(lambda: running.get("/api/slow", params={"ms": "2000"}))
    _wait_for(lambda: running.service.httpd.in_flight == 1)
    started = time.monotonic()
    assert running.service.stop() is False
    assert time.monotonic() - started < 1.5
    thread.join(5)


def _spawn(tmp_path: Path, **overrides: str) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    env = subprocess_env(base_env(tmp_path, APP_PORT=str(port), **overrides))
    out = tmp_path / "stdout.log"
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed argv
        [sys.executable, "-m", "app"], cwd=REPO, env=env, stdout=out.open("w"), stderr=subprocess.STDOUT
    )
    return process, port, out


def _wait_listening(port: int, process: subprocess.Popen, timeout: float = 10) -> None:
    def up() -> bool:
        assert process.poll() is None, "service exited early"
        try:
            return requests.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    _wait_for(up, timeout, 0.05)


def _entries(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_then_exits_zero(tmp_path, signum):
    process, port, out = _spawn(tmp_path)
    try:
        _wait_listening(port, process)
        thread, result = _in_background(
            lambda: requests.get(f"http://127.0.0.1:{port}/api/slow?ms=1000", timeout=10))
        time.sleep(0.3)
        process.send_signal(signum)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    thread.join(5)
    assert result["value"].status_code == 200
    messages = [entry["msg"] for entry in _entries(out)]
    assert messages.index("stop requested") < messages.index("draining") < messages.index("drained")
    assert messages[-1] == "exiting"
    draining = next(entry for entry in _entries(out) if entry["msg"] == "draining")
    assert draining["in_flight"] == 1


def test_sigterm_exits_zero_after_the_drain_bound_even_with_a_stuck_request(tmp_path):
    process, port, out = _spawn(tmp_path, APP_DRAIN_SECONDS="0.5")
    try:
        _wait_listening(port, process)
        _in_background(lambda: requests.get(f"http://127.0.0.1:{port}/api/slow?ms=20000", timeout=30))
        time.sleep(0.3)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert time.monotonic() - started < 3
    finally:
        if process.poll() is None:
            process.kill()
    assert any(entry["msg"].startswith("drain timed out") for entry in _entries(out))


def test_boot_delay_postpones_listening(tmp_path):
    process, port, _ = _spawn(tmp_path, APP_BOOT_DELAY="1.5")
    try:
        time.sleep(0.5)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health/live", timeout=1)
        _wait_listening(port, process)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_sigterm_during_boot_delay_exits_promptly(tmp_path):
    process, _, _ = _spawn(tmp_path, APP_BOOT_DELAY="30")
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(5) == 0


def test_port_in_use_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = subprocess_env(base_env(tmp_path, APP_PORT=str(port)))
        done = subprocess.run([sys.executable, "-m", "app"], cwd=REPO, env=env,  # noqa: S603
                              capture_output=True, text=True, timeout=20)
    assert done.returncode == 1
    assert any(json.loads(line)["msg"] == "cannot listen" for line in done.stdout.splitlines())
