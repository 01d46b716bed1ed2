"""Fixtures the integration tests share: a real sshd on loopback for the remote tests."""

from __future__ import annotations

import pytest

from tests.support.sshd import ensure_sshd_available, running_sshd


@pytest.fixture
def sshd(tmp_path):
    reason = ensure_sshd_available()  # raises in CI: there the SSH tests must run, never skip
    if reason:
        pytest.skip(reason)
    with running_sshd(tmp_path / "sshd") as handle:
        yield handle
