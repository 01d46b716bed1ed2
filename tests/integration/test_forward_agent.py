"""The deploying user's SSH agent never reaches the host, whatever ssh_config says: root on the host could use its
keys for as long as a deploy runs. A real sshd (tests/support/sshd.py), a real ssh-agent holding a key, and an
ssh_config with ``ForwardAgent yes``."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from invoke import Config, Context

from droplet_deploy.host.connect import connect
from tests.integration.test_remote import _settings

pytestmark = pytest.mark.integration


@pytest.fixture
def agent(tmp_path, monkeypatch):
    """An ssh-agent of the test's own, holding the test key, in SSH_AUTH_SOCK; stopped after."""
    sock = tmp_path / "agent.sock"
    started = subprocess.run(["ssh-agent", "-a", str(sock), "-s"], capture_output=True, text=True, check=True)
    pid = int(started.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
    monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
    try:
        yield sock
    finally:
        os.kill(pid, signal.SIGTERM)


def test_forward_agent_yes_in_ssh_config_is_not_honoured(sshd, agent, tmp_path):
    subprocess.run(["ssh-add", str(sshd.identity)], check=True, capture_output=True)
    listed = subprocess.run(["ssh-add", "-l"], capture_output=True, text=True)
    assert listed.returncode == 0, "the agent holds a key that could be forwarded"
    config = tmp_path / "ssh_config"
    config.write_text(sshd.ssh_config.read_text().replace(f"Host {sshd.alias}\n",
                                                          f"Host {sshd.alias}\n    ForwardAgent yes\n", 1))
    assert "ForwardAgent yes" in config.read_text()
    settings = _settings(tmp_path, host=sshd.alias, ssh_config=str(config), known_hosts=str(sshd.known_hosts))
    target = connect(Context(Config()), settings)
    try:
        probe = ["sh", "-c", 'echo "${SSH_AUTH_SOCK:-none}"']
        assert target.probe(probe).stdout.strip() == "none", "the shell every command goes through"
        # A command that waits for the shell gets a session of its own through Fabric: no agent there either.
        ran = target.connection.run('echo "${SSH_AUTH_SOCK:-none}"', hide=True, in_stream=False)
        assert ran.stdout.strip() == "none"
        assert target.connection.forward_agent is False
    finally:
        target.close()
