"""A fixed-rate HTTP load client for zero-downtime checks (tests) and measurements (``bench/rollout.py``).

It sends GET requests to one URL on 127.0.0.1 at a fixed rate, each on a fresh connection (as independent
users would), and records every answer: when it was sent, how long it took, the status or the error, and the
``revision`` the body reports when it is JSON. It is bounded twice, by a request count and by a wall-clock
limit, and stops itself at whichever comes first, so a test that dies cannot leave it running::

    with Load("http://127.0.0.1:8001/api/health", rate=25, max_seconds=300) as load:
        ...deploy...
    report = load.report()
    assert report.failed == 0, report.describe()

Requests are scheduled against the clock, not after the previous answer, so a hanging request cannot slow the
rate down and hide an outage: that is what a real client population does to a site during a deploy.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

LOOPBACK = ("127.0.0.1", "localhost", "::1")


T = TypeVar("T")

@dataclass(frozen=True)
class Sample:
    """One request. ``sent`` and ``done`` are seconds since the load started."""

    sent: float
    done: float
    status: int | None
    error: str | None = None
    revision: str | None = None

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500

    def describe(self) -> str:
        what = self.error or f"HTTP {self.status}"
        return f"t={self.sent:.2f}s {what} ({(self.done - self.sent) * 1000:.0f} ms)"


@dataclass(frozen=True)
class Report:
    samples: list[Sample]
    duration: float
    rate: float

    @property
    def requests(self) -> int:
        return len(self.samples)

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.failed]

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def longest_outage(self) -> float:
        """Longest stretch from a failed request being sent to the next request that succeeded finishing."""
        longest = 0.0
        outage_start: float | None = None
        for sample in self.samples:
            if sample.failed:
                outage_start = sample.sent if outage_start is None else outage_start
            elif outage_start is not None:
                longest = max(longest, sample.done - outage_start)
                outage_start = None
        if outage_start is not None:
            last = max(s.done for s in self.samples)
            longest = max(longest, last - outage_start)
        return longest

    def revisions(self) -> list[tuple[float, str | None]]:
        """Each change of the reported revision, in the order requests were sent: [(sent, revision), ...]."""
        changes: list[tuple[float, str | None]] = []
        for sample in self.samples:
            if sample.failed or sample.revision is None:
                continue
            if not changes or changes[-1][1] != sample.revision:
                changes.append((sample.sent, sample.revision))
        return changes

    def last_revision(self) -> str | None:
        served = self.revisions()
        return served[-1][1] if served else None

    def describe(self, limit: int = 10) -> str:
        head = (f"{self.requests} requests in {self.duration:.1f}s at {self.rate:g}/s, {self.failed} failed, "
                f"longest outage {self.longest_outage:.2f}s")
        shown = "; ".join(s.describe() for s in self.failures[:limit])
        more = f" (+{self.failed - limit} more)" if self.failed > limit else ""
        return head + (f": {shown}{more}" if shown else "")


def _fetch(host: str, port: int, path: str, timeout: float) -> tuple[int | None, str | None, str | None]:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close", "User-Agent": "load-check"})
        response = connection.getresponse()
        body = response.read(64 * 1024)
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:200], None
    finally:
        connection.close()
    return response.status, None, _revision_of(body)


def _revision_of(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("revision") if isinstance(data, dict) else None
    return str(value) if value is not None else None


class Load:
    """Send ``rate`` GETs per second to ``url`` until stopped, ``max_requests`` were sent or ``max_seconds`` passed."""

    def __init__(self, url: str, *, rate: float = 25.0, max_seconds: float = 300.0, max_requests: int | None = None,
                 timeout: float = 5.0):
        parts = urlsplit(url)
        # Deliberately narrow: this client is for our own stacks on this machine, never for anything else.
        if parts.scheme != "http" or parts.hostname not in LOOPBACK:
            raise ValueError(f"load goes only to http://127.0.0.1, not {url!r}")
        if not 0 < rate <= 200:
            raise ValueError(f"rate must be between 0 and 200 requests/s, got {rate}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.rate = rate
        self.max_seconds = max_seconds
        self.max_requests = max_requests if max_requests is not None else int(rate * max_seconds)
        self.timeout = timeout
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._ended: float | None = None
        # Enough workers that requests hanging for the whole timeout still cannot hold the rate back.
        self._pool = ThreadPoolExecutor(max_workers=min(256, int(rate * (timeout + 1)) + 4),
                                        thread_name_prefix="load")

    def __enter__(self) -> Load:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._schedule, name="load-schedule", daemon=True)
        self._thread.start()

    def _schedule(self) -> None:
        interval = 1.0 / self.rate
        for number in range(self.max_requests):
            due = self._started + number * interval
            if due - self._started > self.max_seconds or self._stop.wait(max(0.0, due - time.monotonic())):
                break
            self._pool.submit(self._one, time.monotonic() - self._started)
        self._ended = time.monotonic()

    def _one(self, sent: float) -> None:
        status, error, revision = _fetch(self.host, self.port, self.path, self.timeout)
        sample = Sample(sent, time.monotonic() - self._started, status, error, revision)
        with self._lock:
            self._samples.append(sample)

    def stop(self) -> Report:
        """Stop sending, wait for the requests in flight (at most ``timeout``) and return the report."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=True)
        return self.report()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, seconds: float) -> None:
        """Let the load run a little longer (before stopping), unless it has already stopped itself."""
        if self._thread is not None:
            self._thread.join(timeout=seconds)

    def during(self, action: Callable[[], T], settle: float) -> tuple[T, Report]:
        """Run ``action`` under the load, then ``settle`` seconds more; its result and the report of that step."""
        start = self.now()
        result = action()
        self.wait(settle)
        report = self.report(start)
        self.kept_pace(report)
        return result, report

    def kept_pace(self, report: Report) -> None:
        """Fail when fewer than 80% of the requests due went out: a quiet step would prove nothing."""
        assert report.requests >= 0.8 * self.rate * report.duration, f"the load fell behind: {report.describe()}"

    def now(self) -> float:
        """Seconds since the load started: a mark for ``report(start, end)``."""
        return time.monotonic() - self._started

    def report(self, start: float = 0.0, end: float | None = None) -> Report:
        """Everything sent so far, or only what was sent between two ``now()`` marks (one step of a longer run)."""
        stopped = self._ended - self._started if self._ended is not None else self.now()
        with self._lock:
            samples = sorted((s for s in self._samples if start <= s.sent and (end is None or s.sent < end)),
                             key=lambda s: s.sent)
        last = stopped if end is None else min(end, stopped)
        return Report(samples, max(0.0, last - start), self.rate)
