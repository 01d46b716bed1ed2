"""Fixtures shared by the unit tests."""

from pathlib import Path

import pytest


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project directory holding the files the default settings point at, so config validation passes."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "docker-compose.test.yml").write_text("services: {}\n")
    (tmp_path / "docker-compose.beta.yml").write_text("services: {}\n")
    return tmp_path
