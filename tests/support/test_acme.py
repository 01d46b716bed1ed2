"""The ACME test CA itself, with a real client: Caddy (local/caddy:2) gets a certificate from Pebble through HTTP-01,
keeps it across a restart, takes a new config through its admin API, and renews a short-lived one.

Caddy runs with ``--network host`` so that Pebble (on 127.0.0.1) reaches it on its HTTP port and it reaches
Pebble; ``default_bind 127.0.0.1`` keeps its listeners off other interfaces. Timings go to stdout (``-s``).
"""

from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509

from .acme import HOST, PebbleHandle, ensure_pebble_available, running_pebble

pytestmark = pytest.mark.integration

CADDY_IMAGE = "local/caddy:2"
SITE = "a.app.test"
ISSUE_DEADLINE = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def parts_available():
    reason = ensure_pebble_available()
    if reason:
        pytest.skip(reason)
    if subprocess.run(["docker", "image", "inspect", CADDY_IMAGE], capture_output=True).returncode != 0:
        pytest.skip(f"{CADDY_IMAGE} is not built; scripts/bootstrap builds it offline")


@dataclass
class Ports:
    http: int
    https: int
    admin: int
    backend: int


@pytest.fixture
def ports() -> Ports:
    return Ports(http=free_port(), https=free_port(), admin=free_port(), backend=free_port())


@pytest.fixture
def backend(tmp_path, ports) -> Iterator[str]:
    """A tiny HTTP app on the host (python -m http.server) whose page carries a marker."""
    marker = f"backend-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text(f"<p>{marker}</p>\n")
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", HOST, "--directory", str(root),
                             str(ports.backend)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://{HOST}:{ports.backend}/", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        yield marker
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def caddyfile(pebble: PebbleHandle, ports: Ports, sites: str, *, extra_global: str = "") -> str:
    return f"""{{
	admin {HOST}:{ports.admin}
	acme_ca {pebble.directory_url}
	acme_ca_root /pebble/ca.pem
	http_port {ports.http}
	https_port {ports.https}
	default_bind {HOST}
	cert_issuer acme {{
		disable_tlsalpn_challenge
	}}
{extra_global}}}

{sites}
"""


def proxy_site(name: str, ports: Ports) -> str:
    return f"{name} {{\n\treverse_proxy {HOST}:{ports.backend}\n}}\n"


@dataclass
class Caddy:
    name: str
    volume: str
    ports: Ports

    def docker(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=120, check=check,
                              stdin=subprocess.DEVNULL)

    def logs(self, since: str | None = None) -> str:
        result = self.docker("logs", *(["--since", since] if since else []), self.name, check=False)
        return result.stdout + result.stderr

    def started_at(self) -> str:
        return self.docker("inspect", "--format", "{{.State.StartedAt}} {{.State.Pid}}", self.name).stdout.strip()

    def wait_admin(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://{HOST}:{self.ports.admin}/config/", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"Caddy's admin API did not answer within {timeout:.0f}s\n{self.logs()[-3000:]}")

    def load(self, config: str) -> requests.Response:
        """POST /load: replace the whole running config (a Caddyfile, adapted by Caddy itself)."""
        return requests.post(f"http://{HOST}:{self.ports.admin}/load", data=config.encode(),
                             headers={"Content-Type": "text/caddyfile"}, timeout=30)


@contextmanager
def running_caddy(tmp_path: Path, pebble: PebbleHandle, ports: Ports, config: str) -> Iterator[Caddy]:
    suffix = uuid.uuid4().hex[:10]
    confdir = tmp_path / f"caddy-{suffix}"
    confdir.mkdir()
    (confdir / "Caddyfile").write_text(config)
    caddy = Caddy(name=f"test-caddy-{suffix}", volume=f"test-caddy-data-{suffix}", ports=ports)
    caddy.docker("volume", "create", caddy.volume)
    try:
        caddy.docker("run", "-d", "--name", caddy.name, "--network", "host", "--label", "org.droplet-deploy.test=caddy",
                     "-v", f"{caddy.volume}:/data", "-v", f"{confdir}:/etc/caddy:ro",
                     "-v", f"{pebble.ca_bundle}:/pebble/ca.pem:ro", CADDY_IMAGE)
        caddy.wait_admin()
        yield caddy
    finally:
        caddy.docker("rm", "-f", "-v", caddy.name, check=False)
        caddy.docker("volume", "rm", "-f", caddy.volume, check=False)


def served_certificate(ports: Ports, root: Path, name: str = SITE) -> x509.Certificate:
    """The certificate Caddy serves for ``name`` (SNI), verified against Pebble's root."""
    context = ssl.create_default_context(cafile=str(root))
    with socket.create_connection((HOST, ports.https), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def wait_for_serial(ports: Ports, root: Path, serial: str, name: str = SITE, timeout: float = 20) -> x509.Certificate:
    """Wait until Caddy serves the certificate Pebble logged as ``serial`` (it loads just after issuance)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            cert = served_certificate(ports, root, name)
            if cert.serial_number == int(serial, 16):
                return cert
            last = f"serial {cert.serial_number:x}"
        except (OSError, ssl.SSLError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{name} is not served with certificate {serial} after {timeout:.0f}s (last: {last})")


def curl(ports: Ports, root: Path, name: str = SITE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", "--max-time", "10", "--resolve", f"{name}:{ports.https}:{HOST}",
                           "--cacert", str(root), f"https://{name}:{ports.https}/"],
                          capture_output=True, text=True, timeout=30)


def wait_served(ports: Ports, root: Path, marker: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Retry curl until the page with ``marker`` comes back over verified HTTPS (the cert loads just after issue)."""
    deadline = time.monotonic() + timeout
    result = curl(ports, root)
    while marker not in result.stdout and time.monotonic() < deadline:
        time.sleep(0.2)
        result = curl(ports, root)
    return result


def new_orders(pebble: PebbleHandle) -> int:
    return pebble.log_text().count("POST /order-plz")


def test_caddy_gets_a_certificate_through_http01_keeps_it_across_a_restart_and_reloads_without_one(
        tmp_path, ports, backend):
    timings: dict[str, float] = {}
    with running_pebble(tmp_path / "pebble", http_port=ports.http) as pebble:
        root = pebble.write_root(tmp_path / "pebble-root.pem")
        started = time.monotonic()
        with running_caddy(tmp_path, pebble, ports, caddyfile(pebble, ports, proxy_site(SITE, ports))) as caddy:
            serials = pebble.wait_for_issuance(1, timeout=ISSUE_DEADLINE)
            timings["caddy start to certificate issued"] = time.monotonic() - started
            result = wait_served(ports, root, backend)
            timings["caddy start to first verified HTTPS response"] = time.monotonic() - started
            assert result.returncode == 0 and backend in result.stdout, result.stderr + caddy.logs()[-3000:]
            # Real HTTP-01: Pebble fetched the token from Caddy's HTTP port (TLS-ALPN-01 is off in this config).
            log = pebble.log_text()
            assert f"http://{SITE}:{ports.http}/.well-known/acme-challenge/" in log, log[-3000:]
            cert = served_certificate(ports, root)
            assert cert.serial_number == int(serials[0], 16)
            assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == SITE
            orders = new_orders(pebble)

            # A restart on the same /data volume: the certificate comes from storage, Pebble sees no new order.
            before_restart = time.monotonic()
            restart_mark = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            caddy.docker("restart", "-t", "10", caddy.name)
            caddy.wait_admin()
            result = wait_served(ports, root, backend)
            timings["restart to verified HTTPS response"] = time.monotonic() - before_restart
            assert result.returncode == 0 and backend in result.stdout, result.stderr
            assert pebble.issued_serials() == serials
            assert new_orders(pebble) == orders
            assert served_certificate(ports, root).serial_number == cert.serial_number
            after = caddy.logs(since=restart_mark)
            assert "certificate obtained successfully" not in after, after[-3000:]
            assert "obtaining certificate" not in after, after[-3000:]
            evidence = [line[:300] for line in after.splitlines() if SITE in line]

            # POST /load swaps the whole config in the running process: same container start, same certificate.
            started_at = caddy.started_at()
            replaced = (f"{SITE} {{\n\theader X-Config replaced\n\treverse_proxy {HOST}:{ports.backend}\n}}\n"
                        f"extra.app.test {{\n\trespond \"second site\" 200\n}}\n")
            before_load = time.monotonic()
            response = caddy.load(caddyfile(pebble, ports, replaced))
            timings["POST /load"] = time.monotonic() - before_load
            assert response.status_code == 200, response.text
            headers = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", "--resolve",
                                      f"{SITE}:{ports.https}:{HOST}", "--cacert", str(root),
                                      f"https://{SITE}:{ports.https}/"], capture_output=True, text=True, timeout=30)
            assert "x-config: replaced" in headers.stdout.lower(), headers.stdout + headers.stderr
            assert caddy.started_at() == started_at
            assert served_certificate(ports, root).serial_number == cert.serial_number
            # The new site gets its own certificate from the same CA, also without a restart.
            pebble.wait_for_issuance(2, timeout=ISSUE_DEADLINE)
            timings["POST /load to certificate for the new site"] = time.monotonic() - before_load
            wait_for_serial(ports, root, pebble.issued_serials()[1], "extra.app.test")
            assert caddy.started_at() == started_at
    print("\nACME timings: " + ", ".join(f"{k}: {v:.2f}s" for k, v in timings.items()))
    print(f"Pebble issued {serials[0]} once; Caddy's log after the restart, lines naming {SITE}:\n"
          + "\n".join(evidence))


def test_short_lived_certificates_are_renewed_by_the_client(tmp_path, ports, backend):
    # Pebble's certificateValidityPeriod: 30 s certificates. Caddy renews in the last third of a lifetime and
    # checks every renew_interval, so a second certificate is due about 20 s after the first.
    lifetime = 30
    with running_pebble(tmp_path / "pebble", http_port=ports.http, validity_seconds=lifetime) as pebble:
        assert f"Using certificate validity period of {lifetime} seconds" in pebble.log_text()
        root = pebble.write_root(tmp_path / "pebble-root.pem")
        config = caddyfile(pebble, ports, proxy_site(SITE, ports), extra_global="\trenew_interval 2s\n")
        with running_caddy(tmp_path, pebble, ports, config) as caddy:
            first = pebble.wait_for_issuance(1, timeout=ISSUE_DEADLINE)
            assert backend in wait_served(ports, root, backend).stdout
            cert = served_certificate(ports, root)
            validity = cert.not_valid_after_utc - cert.not_valid_before_utc
            assert abs(validity.total_seconds() - lifetime) <= 2, validity
            issued_at = time.monotonic()
            serials = pebble.wait_for_issuance(2, timeout=lifetime + 30)
            renewed_after = time.monotonic() - issued_at
            assert serials[0] == first[0]
            renewed = wait_for_serial(ports, root, serials[1])
            assert renewed.not_valid_before_utc > cert.not_valid_before_utc, caddy.logs()[-3000:]
    print(f"\nshort-lived ({lifetime}s) certificate renewed {renewed_after:.1f}s after the first was issued")


def test_a_name_resolved_elsewhere_fails_validation(tmp_path, ports, backend):
    # b.app.test resolves to 127.0.0.2, where nothing listens (Caddy binds 127.0.0.1 only): HTTP-01 must fail.
    other = "b.app.test"
    with running_pebble(tmp_path / "pebble", http_port=ports.http) as pebble:
        pebble.resolve(other, "127.0.0.2")
        assert pebble.lookup(other) == ["127.0.0.2"]
        assert pebble.lookup(SITE) == [HOST]
        sites = proxy_site(SITE, ports) + proxy_site(other, ports)
        with running_caddy(tmp_path, pebble, ports, caddyfile(pebble, ports, sites)) as caddy:
            pebble.wait_for_issuance(1, timeout=ISSUE_DEADLINE)
            # Pebble logs that it tried and that the authorization went invalid; Caddy logs the problem it got.
            deadline = time.monotonic() + ISSUE_DEADLINE
            while "127.0.0.2" not in caddy.logs() and time.monotonic() < deadline:
                time.sleep(0.2)
            log = pebble.log_text()
            assert f"Attempting to validate w/ HTTP: http://{other}:{ports.http}/" in log, log[-3000:]
            assert "set INVALID by completed challenge" in log, log[-3000:]
            problem = [line for line in caddy.logs().splitlines() if "127.0.0.2" in line]
            assert problem and other in problem[0], caddy.logs()[-3000:]
            print(f"\nCaddy's log of the refused validation: {problem[0][:400]}")
            assert len(pebble.issued_serials()) == 1
        pebble.unresolve(other)
        assert pebble.lookup(other) == [HOST]


def test_pebble_is_gone_after_the_block(tmp_path):
    with running_pebble(tmp_path / "pebble", http_port=free_port()) as pebble:
        directory = requests.get(pebble.directory_url, verify=str(pebble.ca_bundle), timeout=5).json()
        assert "newOrder" in directory
        home = pebble.workdir
    with pytest.raises(requests.ConnectionError):
        requests.get(pebble.directory_url, verify=False, timeout=2)
    with pytest.raises(requests.ConnectionError):
        requests.post(pebble.challtestsrv_url + "/clear-a", data="{}", timeout=2)
    assert not home.exists()
