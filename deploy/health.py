"""Wait until a service answers healthy *and* reports the revision we deployed.

``judge`` is the pure part (one HTTP answer in, verdict out); ``wait`` polls against a deadline, reports progress
and, when time runs out, says the last thing it saw: "still serving revision abc123, expected def456".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests

from .errors import HealthTimeout


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    revision: str | None = None


def judge(status: int | None, body: str, expected_revision: str | None) -> Verdict:
    """Decide whether one answer of the health endpoint means "deployed"."""
    if status is None:
        return Verdict(False, body or "no answer")
    try:
        data = json.loads(body)
    except ValueError:
        return Verdict(False, f"HTTP {status}, body is not JSON: {_clip(body)!r}")
    if not isinstance(data, dict):
        return Verdict(False, f"HTTP {status}, body is not a JSON object: {_clip(body)!r}")
    revision = data.get("revision")
    revision = str(revision) if revision is not None else None
    health = data.get("status")
    if status != 200 or health != "healthy":
        failing = _failing_checks(data)
        extra = f" (failing: {failing})" if failing else ""
        return Verdict(False, f"HTTP {status}, status {health!r}{extra}", revision)
    if expected_revision and revision != expected_revision:
        if revision is None:
            return Verdict(False, "healthy but reports no revision", None)
        return Verdict(False, f"still serving revision {revision[:12]}, expected {expected_revision[:12]}", revision)
    return Verdict(True, f"healthy at revision {(revision or 'unknown')[:12]}", revision)


def _failing_checks(data: dict) -> str:
    checks = data.get("checks")
    if not isinstance(checks, dict):
        return ""
    bad = [name for name, value in checks.items()
           if isinstance(value, dict) and value.get("status") not in (None, "ok", "healthy", "pass")]
    return ", ".join(sorted(bad))


def probe(url: str, timeout: float) -> tuple[int | None, str]:
    """One GET. Connection problems become (None, reason) so the poller can keep going."""
    try:
        response = requests.get(url, timeout=timeout, headers={"Cache-Control": "no-cache"})
    except requests.ConnectionError:
        return None, "connection refused"
    except requests.Timeout:
        return None, f"no answer within {timeout:g}s"
    except requests.RequestException as exc:
        return None, f"request failed: {type(exc).__name__}"
    return response.status_code, response.text


def wait(url: str, expected_revision: str | None, *, timeout: float, interval: float = 0.5,
         progress: Callable[[str], None] | None = None,
         clock: Callable[[], float] = time.monotonic) -> Verdict:
    """Poll ``url`` until healthy at ``expected_revision``; raise ``HealthTimeout`` with the last state seen."""
    deadline = clock() + timeout
    last: Verdict | None = None
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline - clock()
        status, body = probe(url, timeout=max(0.2, min(5.0, remaining)))
        verdict = judge(status, body, expected_revision)
        if verdict.ok:
            if progress:
                progress(f"{url}: {verdict.reason} after {attempts} check(s)")
            return verdict
        if progress and (last is None or verdict.reason != last.reason):
            progress(f"{url}: {verdict.reason}; waiting (up to {max(0.0, deadline - clock()):.0f}s left)")
        last = verdict
        if clock() + interval > deadline:
            raise HealthTimeout(url, timeout, last.reason)
        time.sleep(interval)


def _clip(text: str, limit: int = 120) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
