"""Development runner: restart ``python3 -m app`` whenever a .py file under the code tree changes.

Polls modification times instead of using inotify, because change events do not cross a Docker bind mount
from every host (macOS, Windows); polling a few dozen files once a second is cheap.
Run it as ``python3 -m app.devserver`` from the directory that holds the ``app`` package.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .config import Config
from .logs import JsonFormatter, StdoutHandler

DEFAULT_POLL_SECONDS = 1.0


def snapshot(root: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for path in root.rglob("*.py"):
        try:
            found[str(path)] = path.stat().st_mtime_ns
        except OSError:  # deleted between listing and stat: the next poll sees it gone
            continue
    return found


def changed(before: dict[str, int], after: dict[str, int]) -> list[str]:
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


def _logger() -> logging.Logger:
    log = logging.Logger("devserver", logging.INFO)
    handler = StdoutHandler()
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    return log


class Runner:
    def __init__(self, root: Path, log: logging.Logger, poll_seconds: float, stop_timeout: float) -> None:
        self.root = root
        self.log = log
        self.poll_seconds = poll_seconds
        self.stop_timeout = stop_timeout
        self.child: subprocess.Popen | None = None
        self.stopping: int | None = None

    def start(self) -> None:
        self.child = subprocess.Popen([sys.executable, "-m", "app"], cwd=self.root.parent)  # noqa: S603
        self.log.info("service started", extra={"pid": self.child.pid})

    def stop_child(self) -> int | None:
        if self.child is None:
            return None
        child, self.child = self.child, None
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return child.returncode

    def on_signal(self, signum, frame) -> None:
        self.stopping = signum

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)
        seen = snapshot(self.root)
        self.start()
        reported_exit = False
        while self.stopping is None:
            time.sleep(self.poll_seconds)
            now = snapshot(self.root)
            diff = changed(seen, now)
            if diff:
                seen = now
                self.log.info("change detected; restarting", extra={"changed": diff[:5]})
                self.stop_child()
                self.start()
                reported_exit = False
            elif self.child is not None and self.child.poll() is not None and not reported_exit:
                # A crashed service is not restarted in a loop: the next edit is what brings it back.
                self.log.warning("service exited; waiting for a change", extra={"code": self.child.returncode})
                reported_exit = True
        code = self.stop_child()
        self.log.info("devserver stopped", extra={"service_exit": code})
        return 0


def main() -> int:
    log = _logger()
    root = Path(os.environ.get("APP_RELOAD_DIR") or Path(__file__).resolve().parent)
    try:
        poll = float(os.environ.get("APP_RELOAD_INTERVAL") or DEFAULT_POLL_SECONDS)
        drain = float(os.environ.get("APP_DRAIN_SECONDS") or Config.drain_seconds)
    except ValueError as exc:
        print(f"devserver error: {exc}", file=sys.stderr)
        return 2
    # the service validates its own config; the runner only needs to outwait its drain
    return Runner(root, log, poll, drain + 5).run()


if __name__ == "__main__":
    sys.exit(main())
