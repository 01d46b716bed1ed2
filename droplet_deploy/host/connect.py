"""One verified SSH connection per task: resolve the host, check its key, log in, and say why when it fails.

Every command, upload and tunnel of the task then shares this connection's transport (Fabric opens a channel
per command), so a deploy logs in once.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Callable

import fabric
import fabric.runners
import paramiko
from invoke import Context

from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import ConnectError, DeployError
from droplet_deploy.host import known_hosts as hosts
from droplet_deploy.transport.target import SshTarget

# Paramiko logs each refused tunnel connection (a container still booting) at ERROR; what matters reaches
# the user as one line from the exception instead.
logging.getLogger("paramiko").addHandler(logging.NullHandler())


def connect(c: Context, settings: Settings, *, say: Callable[[str], None] | None = None) -> SshTarget:
    """Open the connection to ``settings.host``; the target starts in ``/``."""
    say = say or (lambda text: print(text, file=sys.stderr, flush=True))
    spec = hosts.parse_host_spec(settings.host or "")
    # forward_agent=False whatever ssh_config says (ForwardAgent yes): whoever is root on the host could use the
    # deploying user's keys for as long as the deploy runs.
    connection = fabric.Connection(spec.host, user=spec.user, port=spec.port, forward_agent=False,
                                   config=fabric_config(settings, dry=bool(c.config.run.dry)))
    # Fabric rounds its own timeout down to whole seconds (0.5 would mean none); paramiko takes floats.
    connection.connect_timeout = settings.connect_timeout
    connection.connect_kwargs.setdefault("banner_timeout", settings.connect_timeout)
    missing_keys = _drop_missing_identities(connection)
    if str(connection.ssh_config.get("identitiesonly", "")).lower() == "yes":
        connection.connect_kwargs.update(allow_agent=False, look_for_keys=False)

    loaded = _verify_host_keys(connection, settings, spec.host, say)
    hop = connection.gateway
    while isinstance(hop, fabric.Connection):  # a ProxyJump host is checked like the host itself
        _verify_host_keys(hop, settings, hop.original_host, say)
        hop.forward_agent = False
        hop = hop.gateway
    client = connection.client
    try:
        connection.open()
    except BaseException as exc:
        transport = client.get_transport()
        spoke = bool(transport is not None and transport.remote_version)  # the server sent its SSH banner
        connection.close()
        if isinstance(exc, DeployError) or not isinstance(exc, Exception):
            raise
        raise explain(exc, connection, spec.host, loaded, missing_keys, settings.connect_timeout,
                      spoke=spoke) from None

    target = SshTarget(connection, "/")
    target.watch_link(settings.link_timeout)
    return target


def _verify_host_keys(connection: fabric.Connection, settings: Settings, label: str,
                      say: Callable[[str], None]) -> hosts.Loaded:
    """Replace Fabric's accept-anything policy with known_hosts checking; return what the files gave."""
    trust = hosts.known_hosts_files(settings.known_hosts, connection.ssh_config)
    loaded = hosts.load_known_hosts(connection.client, trust.read)
    connection.client.set_missing_host_key_policy(hosts.TrustPolicy(
        label=label, host=connection.host, port=connection.port, record_to=trust.record_to,
        accept_new=settings.accept_new_host_key, say=say, known=loaded))
    return loaded


def fabric_config(settings: Settings, *, dry: bool) -> fabric.Config:
    """Fabric settings for this host. ``run.dry`` comes from the invoking context, so ``inv --dry`` reaches
    the SSH target (it prints what it would change and still reads the host's state)."""
    overrides = {"run": {"dry": dry}, "runners": {"remote": InterruptibleRemote}}
    if not settings.ssh_config:
        return fabric.Config(overrides=overrides)
    path = os.path.expanduser(settings.ssh_config)
    if not os.path.isfile(path):
        raise ConnectError(f"ssh_config file {path} not found", hint="fix deploy.ssh_config or remove it to use ~/.ssh/config")
    # Only the configured file: neither ~/.ssh/config nor /etc/ssh/ssh_config can change where we connect.
    return fabric.Config(runtime_ssh_path=path, user_ssh_path=os.devnull, system_ssh_path=os.devnull,
                         overrides=overrides)


class InterruptibleRemote(fabric.runners.Remote):
    """Ctrl-C ends the command on the host too, and at once.

    Without a pty Fabric can only re-raise the interrupt, and Invoke then waits for the command's output to end
    first: a running build would hold the deploy (and its lock) until it finished. Closing the channel ends that
    wait; the command on the host loses its output pipe (a build stops at its next line of output).
    """

    def send_interrupt(self, interrupt: KeyboardInterrupt) -> None:
        if not self.using_pty:
            self.channel.close()
        super().send_interrupt(interrupt)


def _drop_missing_identities(connection: fabric.Connection) -> list[str]:
    """OpenSSH skips an IdentityFile that does not exist; paramiko would stop with a file error instead."""
    keys = connection.connect_kwargs.get("key_filename") or []
    if isinstance(keys, str):
        keys = [keys]
    present = [k for k in keys if os.path.isfile(os.path.expanduser(k))]
    connection.connect_kwargs["key_filename"] = present
    return [k for k in keys if k not in present]


def explain(exc: Exception, connection: fabric.Connection, label: str, known_hosts: hosts.Loaded,
            missing_keys: list[str], timeout: float, *, spoke: bool = True) -> DeployError:
    """One line per way a connection fails, built from the exception's type and facts."""
    host, port, user = connection.host, connection.port, connection.user
    where = f"{user}@{host}:{port}" + (f" (alias {label})" if label != host else "")
    # Most specific first: the key and login failures are SSHExceptions, the network ones all OSErrors.
    if isinstance(exc, paramiko.BadHostKeyException):
        return _host_key_error(exc, label, host, port, known_hosts)
    if isinstance(exc, paramiko.AuthenticationException):
        return _authentication_error(connection, where, label, missing_keys)
    if isinstance(exc, socket.gaierror):
        return _unresolved_error(exc, host, label)
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return _refused_error(exc, where)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return ConnectError(f"ssh: timed out after {timeout:g}s connecting to {where}",
                            hint="check the address and any firewall; raise deploy.connect_timeout on slow links")
    if isinstance(exc, paramiko.SSHException) and not spoke:
        return ConnectError(f"ssh: {where} accepted the connection but never spoke SSH (no banner within {timeout:g}s)",
                            hint="is that port really sshd? check Port in ssh_config")
    if isinstance(exc, OSError):
        return ConnectError(f"ssh: cannot connect to {where}: {exc.strerror or exc}",
                            hint="check the host address and the network")
    return ConnectError(f"ssh: connection to {where} failed: {type(exc).__name__}: {exc}")


def _host_key_error(exc: paramiko.BadHostKeyException, label: str, host: str, port: int,
                    known_hosts: hosts.Loaded) -> DeployError:
    revoked_in = known_hosts.revoked_in(exc.key)
    if revoked_in is not None:  # the host's recorded key is another one, and the one it offers is revoked
        return hosts.revoked_key_error(label, host, port, exc.key, revoked_in)
    return hosts.changed_key_error(label, host, port, exc.key, exc.expected_key, list(known_hosts.files))


def _authentication_error(connection: fabric.Connection, where: str, label: str,
                          missing_keys: list[str]) -> DeployError:
    keys = connection.connect_kwargs.get("key_filename") or []
    tried = f"key(s) {', '.join(keys)}" if keys else "no identity file"
    gone = f"; IdentityFile not found: {', '.join(missing_keys)}" if missing_keys else ""
    return ConnectError(f"ssh: authentication failed for {where} with {tried}{gone}",
                        hint=f"check User and IdentityFile for {label} in ssh_config and that the public key "
                             f"is in ~{connection.user}/.ssh/authorized_keys on the host")


def _unresolved_error(exc: socket.gaierror, host: str, label: str) -> DeployError:
    return ConnectError(f"ssh: cannot resolve host {host!r} ({exc.strerror or exc})",
                        hint=f"add `Host {label}` with its HostName to ~/.ssh/config (or deploy.ssh_config), "
                             "or give user@host[:port]")


def _refused_error(exc: paramiko.ssh_exception.NoValidConnectionsError, where: str) -> DeployError:
    reasons = sorted({os.strerror(e.errno) if getattr(e, "errno", None) else str(e) for e in exc.errors.values()})
    return ConnectError(f"ssh: cannot connect to {where}: {', '.join(reasons) or 'no address answered'}",
                        hint="is sshd running on the host and the port right (Port in ssh_config)?")
