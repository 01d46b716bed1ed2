"""A real OpenSSH server on 127.0.0.1 for tests: its own host key, client key, ssh_config alias.

Usage::

    with running_sshd(tmp_path) as sshd:
        conn = fabric.Connection(sshd.alias, config=sshd.fabric_config(),
                                 connect_kwargs=sshd.connect_kwargs())
        conn.run("docker version")

Everything lives in ``workdir``: keys, ``sshd_config``, ``ssh_config`` (``Host <alias>``), ``known_hosts``
(the real host key, so strict checking passes) and ``sshd.log``. The server runs as the current user
and lets that user in by key only. It is stopped when the ``with`` block ends, even after a failure.
``running_sshd(workdir, sftp=False)`` leaves out the ``Subsystem sftp`` line, as hardened hosts do.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SSHD = "/usr/sbin/sshd"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True, kw_only=True)
class SshdHandle:
    """Where the test sshd listens and the files a client needs to reach it strictly."""

    alias: str
    host: str = HOST
    port: int
    user: str
    ssh_config: Path
    known_hosts: Path
    identity: Path
    host_key_pub: str
    log: Path
    pid: int = 0  # the listening sshd; each connection is served by a child process of it

    def drop_sessions(self) -> int:
        """SIGKILL the sshd processes serving the open connections (a session killed on the host, a reboot as
        the client sees it); the listener stays, so a new connection gets in. How many were killed."""
        killed = 0
        for child in _children_of(self.pid):
            if _is_sshd(child):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGKILL)
                    killed += 1
        return killed

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``paramiko.SSHClient.connect`` / Fabric's ``connect_kwargs``.

        Only the test's own key: no agent and no ``~/.ssh/id_*`` of whoever runs the tests.
        """
        return {"key_filename": [str(self.identity)], "look_for_keys": False, "allow_agent": False}

    def fabric_config(self, **overrides: Any):
        """A ``fabric.Config`` that reads only this server's ssh_config (never ~/.ssh/config or /etc/ssh)."""
        import fabric

        return fabric.Config(
            runtime_ssh_path=str(self.ssh_config),
            user_ssh_path=os.devnull,
            system_ssh_path=os.devnull,
            overrides=overrides or None,
        )

    def known_hosts_line(self, public_key: str | None = None) -> str:
        """The known_hosts entry for this server, as OpenSSH and paramiko look it up: ``[host]:port key``."""
        return f"[{self.host}]:{self.port} {public_key or self.host_key_pub}\n"

    def wrong_known_hosts(self, path: Path) -> Path:
        """Write a known_hosts that pins a *different* key for this host and port (for refusal tests)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        keydir = path.parent / f".{path.name}.key"
        keydir.mkdir(exist_ok=True)
        other = _keygen(keydir / "other_host_key", comment="not-the-test-sshd")
        path.write_text(self.known_hosts_line(other))
        return path


def ensure_sshd_available() -> str | None:
    """Return why the test sshd cannot run here, or None when it can.

    Outside CI the caller may skip with the returned reason. In CI (``CI`` set) ``scripts/bootstrap``
    installs OpenSSH, so a missing binary is a broken machine: this raises instead of letting the
    SSH tests skip silently.
    """
    missing = []
    if not os.access(SSHD, os.X_OK):
        missing.append(SSHD)
    if shutil.which("ssh-keygen") is None:
        missing.append("ssh-keygen")
    if not missing:
        return None
    reason = f"OpenSSH server not installed ({', '.join(missing)} missing); scripts/bootstrap installs it"
    if os.environ.get("CI"):
        raise RuntimeError(f"{reason}. CI must run the SSH tests, not skip them.")
    return reason


@contextlib.contextmanager
def running_sshd(workdir: Path, alias: str = "prod", *, sftp: bool = True) -> Iterator[SshdHandle]:
    """Start sshd in ``workdir``, yield its handle, stop it on exit (also on errors).

    ``sftp=False``: no SFTP subsystem, so only exec channels (and forwarding) work, like a hardened droplet.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    reason = ensure_sshd_available()
    if reason:
        raise RuntimeError(reason)

    host_key = workdir / "ssh_host_ed25519_key"
    identity = workdir / "id_ed25519"
    host_key_pub = _keygen(host_key, comment="test-sshd-host")
    client_pub = _keygen(identity, comment="test-sshd-client")
    authorized_keys = workdir / "authorized_keys"
    authorized_keys.write_text(client_pub + "\n")
    authorized_keys.chmod(0o600)
    _ensure_privsep_dir()

    user = pwd.getpwuid(os.geteuid()).pw_name  # sshd runs as us and lets only us in
    log = workdir / "sshd.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, port = _start(workdir, host_key, authorized_keys, log, sftp=sftp)
        known_hosts = workdir / "known_hosts"
        handle = SshdHandle(
            alias=alias,
            port=port,
            user=user,
            ssh_config=workdir / "ssh_config",
            known_hosts=known_hosts,
            identity=identity,
            host_key_pub=host_key_pub,
            log=log,
            pid=proc.pid,
        )
        known_hosts.write_text(handle.known_hosts_line())
        handle.ssh_config.write_text(
            f"Host {alias}\n"
            f"    HostName {HOST}\n"
            f"    Port {port}\n"
            f"    User {user}\n"
            f"    IdentityFile {identity}\n"
            f"    IdentitiesOnly yes\n"
            f"    UserKnownHostsFile {known_hosts}\n"
            f"    StrictHostKeyChecking yes\n"
        )
        yield handle
    finally:
        if proc is not None:
            _stop(proc)


# --- internals --------------------------------------------------------------------------------------


def _keygen(path: Path, comment: str) -> str:
    """Generate an ed25519 key pair without passphrase at ``path``; return the public key line."""
    for stale in (path, path.with_name(path.name + ".pub")):
        stale.unlink(missing_ok=True)
    subprocess.run(  # noqa: S603 - fixed argv
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


def _ensure_privsep_dir() -> None:
    # sshd running as root insists on its privilege separation directory (systemd creates it normally).
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _write_sshd_config(workdir: Path, port: int, host_key: Path, authorized_keys: Path, *, sftp: bool) -> Path:
    config = workdir / "sshd_config"
    config.write_text(
        f"ListenAddress {HOST}\n"
        f"Port {port}\n"
        f"HostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized_keys}\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\n"
        "StrictModes no\n"
        f"PidFile {workdir / 'sshd.pid'}\n"
        "UsePAM no\n"
        "LogLevel VERBOSE\n"
        "MaxSessions 50\n"
        "MaxStartups 50\n"
        "AllowTcpForwarding yes\n"
        "AllowStreamLocalForwarding yes\n"
        + ("Subsystem sftp internal-sftp\n" if sftp else "")
    )
    return config


def _start(
    workdir: Path, host_key: Path, authorized_keys: Path, log: Path, *, sftp: bool = True
) -> tuple[subprocess.Popen[bytes], int]:
    """Start sshd on a free port; retry if another process grabbed the port in between."""
    last_error = ""
    for _ in range(3):
        port = _free_port()
        config = _write_sshd_config(workdir, port, host_key, authorized_keys, sftp=sftp)
        offset = log.stat().st_size if log.exists() else 0
        with log.open("ab") as log_file:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv
                [SSHD, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_for_banner(proc, port, log, offset)
            return proc, port
        except _PortTaken as exc:
            _stop(proc)
            last_error = str(exc)
        except BaseException:
            _stop(proc)
            raise
    raise RuntimeError(f"test sshd could not bind a port: {last_error}\n{_tail(log)}")


class _PortTaken(Exception):
    pass


def _wait_for_banner(proc: subprocess.Popen[bytes], port: int, log: Path, offset: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "no connection attempt yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with log.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
            if "Address already in use" in text:
                raise _PortTaken(f"port {port} already in use")
            raise RuntimeError(
                f"test sshd exited with status {proc.returncode} before listening\n{_tail(log)}"
            )
        try:
            with socket.create_connection((HOST, port), timeout=1.0) as sock:
                banner = sock.recv(256)
            if banner.startswith(b"SSH-2.0"):
                return
            last = f"unexpected banner {banner[:40]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise RuntimeError(
        f"test sshd on {HOST}:{port} did not send its SSH-2.0 banner within "
        f"{START_TIMEOUT:.0f}s (last: {last})\n{_tail(log)}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the listener and its per-connection children, SIGKILL whatever is left after a grace.

    sshd puts each connection's process in a session of its own, so the listener's process group
    does not reach them: they are found by parent pid before the listener goes.
    """
    if proc.poll() is not None:
        return
    children = _children_of(proc.pid)
    for pid in [proc.pid, *children]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for pid in children:
        if _is_sshd(pid):  # still there (and not a reused pid) after the grace period
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _is_sshd(pid: int) -> bool:
    try:
        return b"sshd" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Field 4 (ppid) follows the parenthesised command name, which may itself contain spaces.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(pid):
            children.append(int(entry.name))
    return children


def _tail(log: Path, lines: int = 20) -> str:
    if not log.exists():
        return "(no sshd log)"
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return "--- sshd log tail ---\n" + "\n".join(text)
