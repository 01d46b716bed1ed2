"""The SSH link as it fails in the field, on a real sshd: a session killed on the host and a half-open connection
(a relay that goes silent, tests/support/relay.py). Each ends the command with one ``LinkLost`` line within the
documented bound (docs/configuration.md, ``link_timeout``), also while the deploy waits on something that is not
the link (a health poll), and nothing more is sent over the lost connection. No Docker needed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from invoke import Config, Context

from droplet_deploy.core import config, signals
from droplet_deploy.core.errors import ConfigError, LinkLost
from droplet_deploy.host.connect import connect
from droplet_deploy.transport.link import LinkWatch
from tests.support.relay import relay_to

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def settings_for(tmp_path: Path, ssh_config: Path, known_hosts: Path, **prod: object) -> config.Settings:
    raw = {"app_name": "link-check", "environments": {"prod": {
        "compose_file": "docker-compose.beta.yml", "remote_dir": str(tmp_path / "nowhere"), "host": "prod",
        "ssh_config": str(ssh_config), "known_hosts": str(known_hosts), "connect_timeout": 5.0, **prod}}}
    return config.load(raw, "prod", root=REPO)


def after(seconds: float, action) -> None:
    threading.Timer(seconds, action).start()


def test_a_killed_session_ends_the_running_command_at_once_with_one_line(sshd, tmp_path):
    target = connect(Context(Config()), settings_for(tmp_path, sshd.ssh_config, sshd.known_hosts))
    logins = sshd.log.read_text(errors="replace").count("Accepted publickey")
    try:
        assert target.probe(["true"]).ok
        after(1.0, sshd.drop_sessions)
        started = time.monotonic()
        with signals.handled(), pytest.raises(LinkLost) as lost:
            target.run(["sleep", "60"])
        noticed = time.monotonic() - started - 1.0
        assert noticed < 3.0, f"noticed {noticed:.1f}s after the session was killed"
        assert str(lost.value).startswith("the SSH link to prod was lost (the connection closed)")
        with pytest.raises(LinkLost):  # nothing more goes over it, and no second login is tried
            target.probe(["true"])
    finally:
        target.close()
    assert sshd.log.read_text(errors="replace").count("Accepted publickey") == logins


def test_a_killed_session_ends_a_wait_that_does_not_use_the_link(sshd, tmp_path):
    """The rollout's health poll runs through a tunnel and would see only refused connections until its own
    timeout; the link watch raises in the main thread instead."""
    target = connect(Context(Config()), settings_for(tmp_path, sshd.ssh_config, sshd.known_hosts))
    try:
        after(0.5, sshd.drop_sessions)
        started = time.monotonic()
        with signals.handled(), pytest.raises(LinkLost, match="the connection closed"):
            time.sleep(60)
        noticed = time.monotonic() - started - 0.5
        assert noticed <= LinkWatch.EVERY + 1.0, f"noticed after {noticed:.1f}s"
    finally:
        target.close()


def test_a_half_open_link_is_noticed_within_link_timeout_plus_the_check_interval(sshd, tmp_path):
    with relay_to(sshd.port) as relay:
        ssh_config = tmp_path / "ssh_config_relay"
        known = tmp_path / "known_hosts_relay"
        known.write_text(f"[127.0.0.1]:{relay.port} {sshd.host_key_pub}\n")
        ssh_config.write_text(sshd.ssh_config.read_text().replace(f"Port {sshd.port}", f"Port {relay.port}")
                              .replace(str(sshd.known_hosts), str(known)))
        target = connect(Context(Config()), settings_for(tmp_path, ssh_config, known, link_timeout=2.0))
        try:
            assert target.probe(["true"]).ok
            after(0.5, relay.freeze)
            started = time.monotonic()
            with signals.handled(), pytest.raises(LinkLost) as lost:
                target.run(["sleep", "60"])
            noticed = time.monotonic() - started - 0.5
            assert noticed <= 2.0 + LinkWatch.EVERY + 1.5, f"noticed after {noticed:.1f}s"
            assert "the host did not answer within 2s" in str(lost.value)
            print(f"half-open link noticed after {noticed:.1f}s (link_timeout 2, check every {LinkWatch.EVERY:g}s)")
        finally:
            target.close()


def test_link_timeout_out_of_range_is_one_config_line(tmp_path):
    with pytest.raises(ConfigError, match=r"deploy\.environments\.prod\.link_timeout"):
        settings_for(tmp_path, tmp_path / "x", tmp_path / "y", link_timeout=0)
