"""Fixtures that run the real service in-process on an ephemeral port, with its own database and log dir."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from app_testing import Running, base_env

from app.config import load
from app.server import Service


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator:
    started: list[Running] = []

    def start(root: Path | None = None, **overrides: str) -> Running:
        root = root or tmp_path
        config = replace(load(base_env(root, **overrides)), port=0)
        service = Service(config)
        service.start(poll_interval=0.02)
        running = Running(service, f"http://127.0.0.1:{service.port}", root)
        started.append(running)
        return running

    yield start
    for running in started:
        running.service.stop()


@pytest.fixture
def service(start_service) -> Running:
    return start_service()
