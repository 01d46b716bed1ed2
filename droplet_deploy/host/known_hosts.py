"""Which host, which port, which user, and which host keys to trust: parsing and known_hosts handling.

Host keys are checked the way OpenSSH's ``StrictHostKeyChecking yes`` does, never Fabric's default (accept
anything). ``accept_new`` behaves like OpenSSH's ``accept-new``: a host seen for the first time has its key
recorded; a host whose key differs from the recorded one is refused whatever the setting. It comes from the
``--accept-new-host-key`` flag only, never from a config file (see ``deploy.config``).

A key on a ``@revoked`` line is refused like OpenSSH refuses it, even with accept-new and even when another line
lists it as the host's key. Paramiko has no notion of marker lines, so they are read here; stricter than OpenSSH
in one way: the key is refused for every host, whatever host patterns the line names.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import paramiko
import paramiko.hostkeys

from droplet_deploy.core.errors import (
    ConnectError,
    HostKeyChanged,
    HostKeyRevoked,
    HostKeyUnknown,
    UsageError,
)

DEFAULT_PORT = 22
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"

_SPEC_RE = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[^\]\s]+)\]|(?P<host>[^@:\s\[\]]+))(?::(?P<port>\d+))?$")


@dataclass(frozen=True)
class HostSpec:
    """``--host`` as written: an ssh_config alias or hostname, optionally with user and port."""

    host: str
    user: str | None = None
    port: int | None = None


def parse_host_spec(spec: str) -> HostSpec:
    """``prod``, ``deploy@prod``, ``deploy@203.0.113.7:2222`` or ``[2001:db8::1]:2222``."""
    text = (spec or "").strip()
    match = _SPEC_RE.match(text)
    if not match:
        raise UsageError(f"--host {spec!r} is not a host", hint="give an ssh_config alias or user@host[:port]")
    port = match.group("port")
    if port is not None and not 1 <= int(port) <= 65535:
        raise UsageError(f"--host {spec!r}: port {port} is out of range", hint="use a port from 1 to 65535")
    return HostSpec(match.group("v6") or match.group("host"), match.group("user"), int(port) if port else None)


def known_hosts_name(host: str, port: int) -> str:
    """The name a host is filed under in known_hosts (OpenSSH writes non-standard ports as ``[host]:port``)."""
    return host if port == DEFAULT_PORT else f"[{host}]:{port}"


def keyscan_command(host: str, port: int, known_hosts: str) -> str:
    return f"ssh-keyscan -p {port} {host} >> {known_hosts}"


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form, so it can be compared with ``ssh-keygen -lf`` on the host."""
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


@dataclass(frozen=True)
class KnownHosts:
    """The files keys are read from, and the one a first-seen key is recorded in."""

    read: tuple[str, ...]
    record_to: str


def known_hosts_files(configured: str | None, ssh_config: Mapping[str, object]) -> KnownHosts:
    """``deploy.known_hosts`` (or ~/.ssh/known_hosts) plus the alias's own ``UserKnownHostsFile`` entries.

    The configured file replaces the user's own, so tests and CI never depend on the developer's files.
    """
    from_ssh_config = [os.path.expanduser(p) for p in _words(ssh_config.get("userknownhostsfile"))
                       if p.lower() != "none"]
    if configured:
        primary = os.path.expanduser(configured)
        read = [primary, *from_ssh_config]
        record_to = primary
    else:
        read = [os.path.expanduser(USER_KNOWN_HOSTS), *from_ssh_config, GLOBAL_KNOWN_HOSTS]
        record_to = from_ssh_config[0] if from_ssh_config else os.path.expanduser(USER_KNOWN_HOSTS)
    return KnownHosts(tuple(dict.fromkeys(read)), record_to)


def _words(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [w for item in value for w in str(item).split()]
    return str(value).split()


REVOKED_MARKER = "@revoked"


@dataclass(frozen=True)
class Loaded:
    """What the known_hosts files gave: the files read, and each revoked key (its blob) with the file saying so."""

    files: tuple[str, ...]
    revoked: Mapping[bytes, str]

    def revoked_in(self, key: paramiko.PKey) -> str | None:
        return self.revoked.get(key.asbytes())


def load_known_hosts(client: paramiko.SSHClient, files: Sequence[str]) -> Loaded:
    """Load every existing file into the client's known keys, except revoked ones.

    Line by line, because paramiko's own loader stops at the first line it cannot parse (``@cert-authority``
    lines are common in real files); such lines are skipped, as OpenSSH skips what it does not understand.
    A revoked key is kept out of the known keys, so a host presenting it always reaches ``TrustPolicy`` or
    fails as a changed key, where it is refused as revoked.
    """
    entries: list[paramiko.hostkeys.HostKeyEntry] = []
    revoked: dict[bytes, str] = {}
    loaded = []
    for path in files:
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise ConnectError(f"cannot read known_hosts file {path}: {exc.strerror}",
                               hint="fix its permissions or point deploy.known_hosts at a readable file") from None
        for number, line in enumerate(lines, 1):
            marker, line = _split_marker(line.strip())
            if not line or line.startswith("#") or marker not in (None, REVOKED_MARKER):
                continue  # @cert-authority needs certificate support paramiko lacks
            entry = _entry(line, number)
            if entry is None:
                continue
            if marker == REVOKED_MARKER:
                revoked.setdefault(entry.key.asbytes(), path)
            else:
                entries.append(entry)
        loaded.append(path)
    known = client.get_host_keys()
    for entry in entries:
        if entry.key.asbytes() not in revoked:
            for name in entry.hostnames:
                known.add(name, entry.key.get_name(), entry.key)
    return Loaded(tuple(loaded), revoked)


def _split_marker(line: str) -> tuple[str | None, str]:
    if not line.startswith("@"):
        return None, line
    marker, _, rest = line.partition(" ")
    return marker, rest.strip()


def _entry(line: str, number: int) -> paramiko.hostkeys.HostKeyEntry | None:
    try:
        return paramiko.hostkeys.HostKeyEntry.from_line(line, number)
    except Exception:  # paramiko raises several kinds for a line it cannot read; skip that line only
        return None


def append_known_host(path: str, name: str, key: paramiko.PKey) -> None:
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(f"{name} {key.get_name()} {key.get_base64()}\n")


def unknown_key_error(label: str, host: str, port: int, key: paramiko.PKey, record_to: str) -> HostKeyUnknown:
    return HostKeyUnknown(
        f"[{label}] host key of {known_hosts_name(host, port)} is not known ({fingerprint(key)}); "
        "refused, nothing was run",
        hint=f"check the fingerprint with the host's admin, then add it: `{keyscan_command(host, port, record_to)}`, "
             "or pass --accept-new-host-key to record it on first use")


def changed_key_error(label: str, host: str, port: int, offered: paramiko.PKey, expected: paramiko.PKey,
                      files: Sequence[str]) -> HostKeyChanged:
    name = known_hosts_name(host, port)
    where = files[0] if len(files) == 1 else " or ".join(files) or "known_hosts"
    return HostKeyChanged(
        f"[{label}] host key of {name} has CHANGED: known_hosts has {fingerprint(expected)}, the host offers "
        f"{fingerprint(offered)}; refused, nothing was run (this can be an attack)",
        hint=f"if the host was rebuilt, confirm the new fingerprint with its admin, remove the old entry with "
             f"`ssh-keygen -R '{name}' -f {where}` and add the new one; --accept-new-host-key never replaces a key")


def revoked_key_error(label: str, host: str, port: int, key: paramiko.PKey, where: str) -> HostKeyRevoked:
    return HostKeyRevoked(
        f"[{label}] host key of {known_hosts_name(host, port)} ({fingerprint(key)}) is REVOKED in {where}; "
        "refused, nothing was run (--accept-new-host-key never accepts a revoked key)",
        hint="the host needs a new key: have its admin generate one, confirm its fingerprint with them and add it "
             "to known_hosts")


class TrustPolicy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko only for a host with no (unrevoked) key on record; a differing key never reaches here."""

    def __init__(self, *, label: str, host: str, port: int, record_to: str, accept_new: bool,
                 say: Callable[[str], None], known: Loaded | None = None):
        self.label, self.host, self.port = label, host, port
        self.record_to = record_to
        self.accept_new = accept_new
        self.say = say
        self.known = known

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        where = self.known.revoked_in(key) if self.known is not None else None
        if where is not None:
            raise revoked_key_error(self.label, self.host, self.port, key, where)
        if not self.accept_new:
            raise unknown_key_error(self.label, self.host, self.port, key, self.record_to)
        try:
            append_known_host(self.record_to, hostname, key)
        except OSError as exc:
            raise ConnectError(f"cannot record the host key of {hostname} in {self.record_to}: {exc.strerror}",
                               hint="point deploy.known_hosts at a writable file") from None
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.say(f"[{self.label}] recorded the new host key of {hostname} ({fingerprint(key)}) in {self.record_to}")
