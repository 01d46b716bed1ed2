"""Dependency checks behind /health/ready and /api/health.

Checks run concurrently, each bounded by its own timeout, so one slow upstream cannot make the whole probe
exceed the orchestrator's health-check timeout.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .config import redact_url
from .db import Database

DATABASE = "database"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict:
        entry: dict = {"status": "ok" if self.ok else "fail", "latency_ms": round(self.latency_ms, 2)}
        if self.error:
            entry["error"] = self.error
        return entry


def upstream_name(url: str) -> str:
    return f"upstream {redact_url(url)}"


def _timed(name: str, probe: Callable[[], None]) -> CheckResult:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # a check reports any failure; it must never take the probe down with it
        return CheckResult(name, False, (time.perf_counter() - started) * 1000, _describe(exc))
    return CheckResult(name, True, (time.perf_counter() - started) * 1000)


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, Exception) else exc
    text = str(exc) or type(exc).__name__
    return text[:200]


def check_database(db: Database) -> CheckResult:
    return _timed(DATABASE, db.ping)


# Health probes go straight to the dependency: an HTTP(S)_PROXY in the environment must not reroute them.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def check_upstream(url: str, timeout: float) -> CheckResult:
    def probe() -> None:
        request = urllib.request.Request(url, headers={"User-Agent": "deploy-demo-ready-check"})
        with _opener.open(request, timeout=timeout) as response:
            response.read(1024)

    return _timed(upstream_name(url), probe)


def run_checks(db: Database, upstreams: Sequence[str], timeout: float) -> list[CheckResult]:
    jobs: list[Callable[[], CheckResult]] = [lambda: check_database(db)]
    jobs += [lambda url=url: check_upstream(url, timeout) for url in upstreams]
    if len(jobs) == 1:
        return [jobs[0]()]
    with ThreadPoolExecutor(max_workers=min(len(jobs), 8), thread_name_prefix="ready-check") as pool:
        return list(pool.map(lambda job: job(), jobs))


def summarize(results: Sequence[CheckResult]) -> tuple[bool, dict]:
    """(all ok, body fragment): ``checks`` keyed by name, and ``failed`` naming each failing check."""
    body: dict = {"checks": {r.name: r.as_dict() for r in results}}
    failed = [r.name for r in results if not r.ok]
    if failed:
        body["failed"] = failed
    return not failed, body
