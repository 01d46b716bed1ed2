"""A real ACME test CA on 127.0.0.1: Let's Encrypt's Pebble, validating HTTP-01 for real, with a DNS stub.

Usage::

    with running_pebble(tmp_path / "pebble", http_port=proxy_http_port) as ca:
        # point the ACME client at ca.directory_url, trusting ca.ca_bundle for the CA's own HTTPS
        ...
        root = ca.write_root(tmp_path / "root.pem")   # what issued certificates chain to
        assert len(ca.issued_serials()) == 1

Two processes from Debian's ``pebble`` package (scripts/bootstrap installs it), both on free loopback ports:

* ``pebble-challtestsrv`` as the only DNS server Pebble asks: every name resolves to 127.0.0.1 (no AAAA), so the
  validation request for any name reaches the front proxy on this host. ``ca.resolve(name, ip)`` makes one name
  resolve elsewhere through its management API (a domain whose DNS does not point at the host);
  ``ca.unresolve(name)`` undoes it. Its HTTP-01/TLS-ALPN-01 responders are off: the client under test answers.
* ``pebble -dnsserver`` with a generated config: its own HTTPS certificate (self-signed, SAN localhost and
  127.0.0.1; ``ca.ca_bundle``), ``httpPort``/``tlsPort`` where it sends HTTP-01 and TLS-ALPN-01 validations (the
  port the front proxy listens on: tests need not bind 80/443), ``PEBBLE_VA_NOSLEEP=1`` (no random 0-15 s sleep
  before each validation) and ``PEBBLE_WFE_NONCEREJECT=0`` (no deliberately rejected nonces; pass ``env`` to bring
  them back).

Short-lived certificates: Pebble 2.4 (Debian's build included) reads ``certificateValidityPeriod`` (seconds) from
its config; ``running_pebble(..., validity_seconds=60)`` sets it (Pebble logs "Using certificate validity period of
60 seconds"). Without it Pebble issues for 5 years. Pebble keeps everything in memory, including its root: a new
Pebble is a new CA, so clients holding certificates from an earlier one see them as untrusted.

Both processes are stopped, and their directory (config, keys, logs) is removed, when the ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PEBBLE = "pebble"
CHALLTESTSRV = "pebble-challtestsrv"
HOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
ISSUED = re.compile(r"Issued certificate serial (\S+) for order (\S+)")


def ensure_pebble_available() -> str | None:
    """Return why Pebble cannot run here, or None when it can (raises in CI, where bootstrap installs it)."""
    missing = [name for name in (PEBBLE, CHALLTESTSRV) if shutil.which(name) is None]
    if not missing:
        return None
    reason = f"{', '.join(missing)} not installed; scripts/bootstrap installs Debian's pebble package"
    if os.environ.get("CI"):
        raise RuntimeError(f"{reason}. CI must run the ACME tests, not skip them.")
    return reason


@dataclass(frozen=True, kw_only=True)
class PebbleHandle:
    """Where the test CA listens, what trusts it, and what it has done."""

    directory_url: str
    management_url: str
    ca_bundle: Path
    http_port: int
    tls_port: int
    dns_address: str
    challtestsrv_url: str
    validity_seconds: int | None
    workdir: Path
    pebble_log: Path
    challtestsrv_log: Path

    def root_pem(self) -> str:
        """The root issued certificates chain to (PEM), from the management endpoint ``/roots/0``."""
        return self._management("/roots/0")

    def intermediate_pem(self) -> str:
        return self._management("/intermediates/0")

    def write_root(self, path: Path) -> Path:
        """Write ``root_pem()`` to ``path`` (e.g. for ``curl --cacert``); return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.root_pem())
        return path

    def resolve(self, name: str, *addresses: str) -> None:
        """Make ``name`` resolve to ``addresses`` (IPv4) instead of 127.0.0.1, for Pebble's validations."""
        self._challtestsrv("/add-a", {"host": name, "addresses": list(addresses)})

    def unresolve(self, name: str) -> None:
        """Drop a ``resolve`` for ``name``: it resolves to 127.0.0.1 again."""
        self._challtestsrv("/clear-a", {"host": name})

    def lookup(self, name: str) -> list[str]:
        """The A records the DNS stub answers for ``name`` (what Pebble's validation will connect to)."""
        host, port = self.dns_address.rsplit(":", 1)
        return dns_a_query(name, host, int(port))

    def log_text(self) -> str:
        return self.pebble_log.read_text(errors="replace") if self.pebble_log.exists() else ""

    def issued_serials(self) -> list[str]:
        """Serial numbers (hex, as Pebble logs them) of every certificate this CA issued, oldest first."""
        return [match.group(1) for match in ISSUED.finditer(self.log_text())]

    def wait_for_issuance(self, count: int = 1, timeout: float = 60.0) -> list[str]:
        """Wait until at least ``count`` certificates were issued; return the serials."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            serials = self.issued_serials()
            if len(serials) >= count:
                return serials
            time.sleep(0.2)
        raise TimeoutError(f"Pebble issued {len(self.issued_serials())} of {count} certificate(s) within "
                           f"{timeout:.0f}s\n{_tail(self.pebble_log)}")

    def _management(self, path: str) -> str:
        response = requests.get(self.management_url + path, verify=str(self.ca_bundle), timeout=10)
        response.raise_for_status()
        return response.text

    def _challtestsrv(self, path: str, body: dict) -> None:
        response = requests.post(self.challtestsrv_url + path, data=json.dumps(body), timeout=10)
        response.raise_for_status()


@contextlib.contextmanager
def running_pebble(workdir: Path, *, http_port: int, tls_port: int | None = None,
                   validity_seconds: int | None = None,
                   env: Mapping[str, str] | None = None) -> Iterator[PebbleHandle]:
    """Start the DNS stub and Pebble, yield the handle, stop both and remove their files on exit.

    ``http_port``: where Pebble sends HTTP-01 validation requests (the front proxy's HTTP port). ``tls_port``:
    where it sends TLS-ALPN-01 ones (default: a free port nothing listens on, so only HTTP-01 can pass).
    ``validity_seconds``: lifetime of issued certificates (Pebble's ``certificateValidityPeriod``).
    ``env``: extra ``PEBBLE_*`` settings, e.g. ``{"PEBBLE_AUTHZREUSE": "0"}`` to validate on every order.
    """
    reason = ensure_pebble_available()
    if reason:
        raise RuntimeError(reason)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="pebble-", dir=workdir)).resolve()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        dns_address, challtestsrv_url = _start_challtestsrv(home, procs)
        cert, key = _self_signed(home)
        handle = _start_pebble(home, procs, cert=cert, key=key, dns_address=dns_address,
                               challtestsrv_url=challtestsrv_url, http_port=http_port,
                               tls_port=tls_port or _free_port(), validity_seconds=validity_seconds, env=env)
        yield handle
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(home, ignore_errors=True)


def dns_a_query(name: str, server: str, port: int, timeout: float = 3.0) -> list[str]:
    """Ask ``server:port`` (UDP) for the A records of ``name``; a minimal client, enough for the DNS stub."""
    query_id = os.getpid() & 0xFFFF
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack(">HHHHHH", query_id, 0x0100, 1, 0, 0, 0) + question + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, port))
        reply, _ = sock.recvfrom(4096)
    answers = struct.unpack(">H", reply[6:8])[0]
    offset = 12 + len(question) + 4
    found = []
    for _ in range(answers):
        offset = _skip_name(reply, offset)
        rtype, _cls, _ttl, length = struct.unpack(">HHIH", reply[offset:offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            found.append(str(ipaddress.IPv4Address(reply[offset:offset + 4])))
        offset += length
    return found


# --- internals --------------------------------------------------------------------------------------


def _skip_name(packet: bytes, offset: int) -> int:
    while True:
        length = packet[offset]
        if length == 0:
            return offset + 1
        if length & 0xC0 == 0xC0:  # a compression pointer ends the name
            return offset + 2
        offset += length + 1


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _free_tcp_and_udp_port() -> int:
    """A port free for TCP and UDP both (the DNS stub serves both on one port)."""
    for _ in range(50):
        port = _free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both TCP and UDP on 127.0.0.1")


def _self_signed(home: Path) -> tuple[Path, Path]:
    """Pebble's own HTTPS certificate: self-signed, for localhost and 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble test CA listener")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.IPv4Address(HOST))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = home / "pebble-https.pem", home / "pebble-https.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def _start_challtestsrv(home: Path, procs: list[subprocess.Popen[bytes]]) -> tuple[str, str]:
    log = home / "challtestsrv.log"
    last = ""
    for _ in range(3):
        dns_port, mgmt_port = _free_tcp_and_udp_port(), _free_port()
        argv = [CHALLTESTSRV, "-defaultIPv4", HOST, "-defaultIPv6", "", "-dns01", f"{HOST}:{dns_port}",
                "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", f"{HOST}:{mgmt_port}"]
        proc = _spawn(argv, log, env=None)
        url = f"http://{HOST}:{mgmt_port}"

        def ready(url: str = url, dns_port: int = dns_port) -> bool:
            requests.get(url + "/", timeout=2)  # any answer: the management API listens
            return dns_a_query("ready.test", HOST, dns_port, timeout=1) == [HOST]

        try:
            _wait(proc, log, ready, what=f"{CHALLTESTSRV} on {HOST}:{mgmt_port}")
            procs.append(proc)
            return f"{HOST}:{dns_port}", url
        except _PortTaken as exc:
            _stop(proc)
            last = str(exc)
        except BaseException:
            _stop(proc)
            raise
    raise RuntimeError(f"{CHALLTESTSRV} could not bind its ports: {last}\n{_tail(log)}")


def _start_pebble(home: Path, procs: list[subprocess.Popen[bytes]], *, cert: Path, key: Path, dns_address: str,
                  challtestsrv_url: str, http_port: int, tls_port: int, validity_seconds: int | None,
                  env: Mapping[str, str] | None) -> PebbleHandle:
    log = home / "pebble.log"
    config_path = home / "pebble-config.json"
    process_env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", **(env or {})}
    last = ""
    for _ in range(3):
        listen, management = _free_port(), _free_port()
        config = {"pebble": {
            "listenAddress": f"{HOST}:{listen}",
            "managementListenAddress": f"{HOST}:{management}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }}
        if validity_seconds is not None:
            config["pebble"]["certificateValidityPeriod"] = int(validity_seconds)
        config_path.write_text(json.dumps(config, indent=2))
        proc = _spawn([PEBBLE, "-config", str(config_path), "-dnsserver", dns_address], log, env=process_env)
        handle = PebbleHandle(
            directory_url=f"https://{HOST}:{listen}/dir",
            management_url=f"https://{HOST}:{management}",
            ca_bundle=cert,
            http_port=http_port,
            tls_port=tls_port,
            dns_address=dns_address,
            challtestsrv_url=challtestsrv_url,
            validity_seconds=validity_seconds,
            workdir=home,
            pebble_log=log,
            challtestsrv_log=home / "challtestsrv.log",
        )

        def ready(handle: PebbleHandle = handle) -> bool:
            directory = requests.get(handle.directory_url, verify=str(cert), timeout=2)
            return directory.ok and "newOrder" in directory.json() and "BEGIN CERTIFICATE" in handle.root_pem()

        try:
            _wait(proc, log, ready, what=f"{PEBBLE} on {HOST}:{listen}")
            procs.append(proc)
            return handle
        except _PortTaken as exc:
            _stop(proc)
            last = str(exc)
        except BaseException:
            _stop(proc)
            raise
    raise RuntimeError(f"{PEBBLE} could not bind its ports: {last}\n{_tail(log)}")


def _spawn(argv: list[str], log: Path, env: Mapping[str, str] | None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        out.write(f"--- {' '.join(argv)}\n".encode())
        out.flush()
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(env) if env is not None else None, start_new_session=True)


class _PortTaken(Exception):
    pass


def _wait(proc: subprocess.Popen[bytes], log: Path, ready, *, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "not probed yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace").rsplit("--- ", 1)[-1]
            if "address already in use" in text:
                raise _PortTaken(f"{what}: address already in use")
            raise RuntimeError(f"{what} exited with status {proc.returncode} before it was ready\n{_tail(log)}")
        try:
            if ready():
                return
            last = "not ready"
        except (OSError, requests.RequestException, ValueError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready within {START_TIMEOUT:.0f}s (last: {last})\n{_tail(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _tail(log: Path, lines: int = 25) -> str:
    if not log.exists():
        return f"(no {log.name})"
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"--- {log.name} tail ---\n" + "\n".join(text)
