"""The test sshd itself: a real server that Fabric and a strict paramiko client reach, and that goes away."""

from __future__ import annotations

import socket

import fabric
import paramiko
import pytest

from .sshd import ensure_sshd_available, running_sshd

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Keep the developer's ~/.ssh (config, keys, known_hosts), ~/.fabric.yaml and agent out of these tests."""
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)


@pytest.fixture
def sshd(tmp_path):
    reason = ensure_sshd_available()
    if reason:
        pytest.skip(reason)
    with running_sshd(tmp_path / "sshd") as handle:
        yield handle


def strict_client(known_hosts) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def test_fabric_reaches_the_alias_and_the_engine(sshd):
    config = fabric.Config(runtime_ssh_path=str(sshd.ssh_config))
    with fabric.Connection(sshd.alias, config=config, connect_kwargs=sshd.connect_kwargs()) as conn:
        assert (conn.host, conn.port, conn.user) == ("127.0.0.1", sshd.port, sshd.user)
        assert conn.run("echo ok", hide=True, in_stream=False).stdout.strip() == "ok"
        version = conn.run(
            "docker version --format '{{.Server.Version}}'", hide=True, warn=True, in_stream=False
        )
        assert version.ok, f"docker over SSH failed: {version.stderr.strip()}"
        assert version.stdout.strip()


def test_fabric_config_helper_reads_only_the_test_ssh_config(sshd):
    config = sshd.fabric_config()
    assert config.base_ssh_config.lookup(sshd.alias)["port"] == str(sshd.port)
    with fabric.Connection(sshd.alias, config=config, connect_kwargs=sshd.connect_kwargs()) as conn:
        assert conn.run("whoami", hide=True, in_stream=False).stdout.strip() == sshd.user


def test_strict_client_accepts_the_pinned_host_key(sshd):
    client = strict_client(sshd.known_hosts)
    try:
        client.connect(sshd.host, port=sshd.port, username=sshd.user, timeout=10, **sshd.connect_kwargs())
        _, stdout, _ = client.exec_command("echo strict")
        assert stdout.read().strip() == b"strict"
    finally:
        client.close()


def test_strict_client_refuses_a_different_host_key(sshd, tmp_path):
    wrong = sshd.wrong_known_hosts(tmp_path / "wrong_known_hosts")
    assert sshd.host_key_pub.split()[1] not in wrong.read_text()
    client = strict_client(wrong)
    try:
        with pytest.raises(paramiko.BadHostKeyException):
            client.connect(sshd.host, port=sshd.port, username=sshd.user, timeout=10, **sshd.connect_kwargs())
    finally:
        client.close()


def test_strict_client_refuses_an_unknown_host(sshd, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    client = strict_client(empty)
    try:
        with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
            client.connect(sshd.host, port=sshd.port, username=sshd.user, timeout=10, **sshd.connect_kwargs())
    finally:
        client.close()


def test_server_is_gone_after_the_block(tmp_path):
    reason = ensure_sshd_available()
    if reason:
        pytest.skip(reason)
    with running_sshd(tmp_path, alias="gone") as handle:
        with socket.create_connection((handle.host, handle.port), timeout=2) as sock:
            assert sock.recv(64).startswith(b"SSH-2.0")
    with pytest.raises(OSError):
        socket.create_connection((handle.host, handle.port), timeout=2).close()
    assert "Received signal 15" in handle.log.read_text()
