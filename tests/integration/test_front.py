"""The front proxy on the real engine, with Pebble as the ACME CA (real HTTP-01 validation on the front's HTTP
port): two apps and a second environment of one of them on one host, each reached by name over HTTPS with a
certificate from the test CA, deploys of each under load on all three, a name claimed twice, a name whose DNS
points elsewhere, a restart and an upgrade of the front proxy.

The three environments are deployed once for the module (the suite's time matters); later tests deploy again
only where the deploy is what they test. The front proxy listens on free loopback ports (front_bind 127.0.0.1),
so nothing here binds 80/443 or listens beyond this machine.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from dataclasses import dataclass

import pytest
from cryptography import x509

from tests.conftest import free_port, make_project, remove_project_resources
from tests.support.acme import ensure_pebble_available, running_pebble
from tests.support.front import NamedLoad, get, served_certificate, wait_get

pytestmark = pytest.mark.integration

CADDY_IMAGE = "local/caddy:2"
LABEL = "org.droplet-deploy.front"


@dataclass
class Site:
    project: object
    env: str
    name: str

    def deploy(self, *extra: str, check: bool = True):
        task = ["deploy.test"] if self.env == "test" else ["deploy.env", "--env", self.env]
        return self.project.inv(*task, *extra, check=check)


def docker(*argv: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=120, check=check)


def front_containers(front_name: str) -> list[str]:
    out = docker("ps", "-a", "--filter", f"label={LABEL}={front_name}", "--format", "{{.Names}} {{.State}}").stdout
    return out.split("\n")[:-1] if out else []


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    reason = ensure_pebble_available()
    if reason:
        pytest.skip(reason)
    if docker("image", "inspect", CADDY_IMAGE).returncode != 0:
        pytest.skip(f"{CADDY_IMAGE} is not built; scripts/bootstrap builds it offline")
    base = tmp_path_factory.mktemp("front")
    http_port, https_port, admin_port = free_port(), free_port(), free_port()
    front_name = f"dtfront{uuid.uuid4().hex[:8]}"
    with running_pebble(base / "pebble", http_port=http_port) as pebble:
        root = pebble.write_root(base / "pebble-root.pem")
        front = {"http_port": http_port, "https_port": https_port, "front_admin_port": admin_port,
                 "front_bind": "127.0.0.1", "front_name": front_name, "front_dir": str(base / "front-dir"),
                 "front_image": CADDY_IMAGE, "acme_directory": pebble.directory_url,
                 "acme_ca_bundle": str(pebble.ca_bundle), "acme_email": "ops@example.com",
                 "certificate_timeout": 40}
        (base / "a").mkdir()
        (base / "b").mkdir()
        a = make_project(base / "a")
        b = make_project(base / "b")
        try:
            a.configure(**front, environments={
                "test": {"hosts": ["a.app.test"]},
                "staging": {"compose_file": "docker-compose.test.yml", "project": f"{a.name}-staging",
                            "public_port": free_port(), "drain_seconds": 2, "hosts": ["staging.a.app.test"]},
            })
            # elsewhere.b.app.test resolves to 127.0.0.2 for the CA, where nothing listens: its validation fails.
            pebble.resolve("elsewhere.b.app.test", "127.0.0.2")
            b.configure(**front, environments={"test": {"hosts": ["b.app.test", "elsewhere.b.app.test"]}})
            sites = [Site(a, "test", "a.app.test"), Site(a, "staging", "staging.a.app.test"),
                     Site(b, "test", "b.app.test")]
            first = {site.name: site.deploy() for site in sites}
            yield {"pebble": pebble, "root": root, "sites": sites, "first": first, "http": http_port,
                   "https": https_port, "admin": admin_port, "front_name": front_name, "a": a, "b": b,
                   "base": base}
        finally:
            for line in front_containers(front_name):
                docker("rm", "-f", line.split()[0])
            docker("volume", "rm", "-f", f"{front_name}-data", f"{front_name}-config")
            docker("image", "rm", "-f", f"{front_name}-caddy:next")
            remove_project_resources(a.name)
            remove_project_resources(b.name)


def test_each_environment_is_served_by_name_over_https_with_a_certificate_from_the_ca(host):
    root, https, http = host["root"], host["https"], host["http"]
    for site in host["sites"]:
        answer = wait_get(site.name, https, "/api/health", root=root)
        assert answer.status == 200, (site.name, answer, host["first"][site.name].stdout[-2000:])
        assert '"revision"' in answer.body and site.project.head() in answer.body
        cert = served_certificate(site.name, https, root)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [site.name]
        # HTTP redirects to HTTPS once the certificate exists, path and query kept.
        redirect = get(site.name, http, "/login?next=/x")
        assert redirect.status == 308, (site.name, redirect.status, host["first"][site.name].stdout[-3000:])
        assert redirect.headers["location"] == f"https://{site.name}:{https}/login?next=/x"
        assert "strict-transport-security" not in answer.headers  # HSTS is off by default
    # Real HTTP-01: the CA fetched each token from the front proxy's HTTP port.
    log = host["pebble"].log_text()
    for site in host["sites"]:
        assert f"http://{site.name}:{http}/.well-known/acme-challenge/" in log
    # Each deploy checked its first name through the front proxy, over HTTPS with SNI, at the revision it deployed.
    for site in host["sites"]:
        out = host["first"][site.name].stdout
        assert f"https://{site.name}/api/health through the front proxy: healthy" in out, out[-2000:]
    # A name nobody routes gets a 404 from the front, not somebody's app.
    assert get("nobody.app.test", http, "/").status == 404
    # The two environments of app a are two stacks: each name reaches its own.
    first = host["first"]
    assert "started the front proxy" in first["a.app.test"].stdout
    assert "started the front proxy" not in first["b.app.test"].stdout
    assert len([c for c in front_containers(host["front_name"]) if c.endswith("running")]) == 1


def test_two_projects_deployed_at_once_both_stay_routed(host):
    """Their front steps change the one config of the host; the front's lock (<front_dir>/lock) keeps them apart."""
    a, b, root, https = host["a"], host["b"], host["root"], host["https"]
    serving = {site.name: site.project.head() for site in host["sites"]}
    a.write("CHANGES.md", "a, deployed beside b\n")
    b.write("CHANGES.md", "b, deployed beside a\n")
    revisions = {"staging.a.app.test": a.commit("deployed at once"), "b.app.test": b.commit("deployed at once")}
    sites = [site for site in host["sites"] if site.name in revisions]
    results: dict[str, subprocess.CompletedProcess] = {}
    threads = [threading.Thread(target=lambda site=site: results.update({site.name: site.deploy(check=False)}))
               for site in sites]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stdout[-3000:], result.stderr[-2000:])
    assert len(results) == 2
    config = (host["base"] / "front-dir" / "caddy.json").read_text()
    for site in host["sites"]:
        assert site.name in config  # no load dropped another environment's route
        answer = wait_get(site.name, https, "/api/health", root=root)
        assert answer.status == 200, (site.name, answer)
        assert revisions.get(site.name, serving[site.name]) in answer.body  # a.app.test was not deployed
    assert not (host["base"] / "front-dir" / "lock").exists()


def test_a_name_whose_dns_points_elsewhere_fails_in_one_line_and_stays_on_http(host):
    out = host["first"]["b.app.test"].stdout
    warning = [line for line in out.splitlines() if "no certificate for elsewhere.b.app.test" in line]
    assert len(warning) == 1, out[-3000:]
    assert "127.0.0.2" in warning[0] and "stays on HTTP" in warning[0]
    plain = get("elsewhere.b.app.test", host["http"], "/api/health")
    assert plain.status == 200 and host["b"].head() in plain.body, plain


def test_a_name_claimed_by_two_environments_is_refused_in_one_line(host):
    b = host["b"]
    b.configure(environments={"dup": {"compose_file": "docker-compose.test.yml", "project": f"{b.name}-dup",
                                      "public_port": free_port(), "hosts": ["www.b.app.test", "a.app.test"]}})
    result = b.inv("deploy.env", "--env", "dup", check=False)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "claimed by both" in line]
    assert len(lines) == 1, result.stdout + result.stderr
    assert "a.app.test" in lines[0] and f"{host['a'].name}-test" in lines[0] and f"{b.name}-dup" in lines[0]
    assert "Traceback" not in result.stderr
    assert not docker("ps", "-q", "--filter", f"label=com.docker.compose.project={b.name}-dup").stdout.strip()
    assert wait_get("a.app.test", host["https"], "/api/health", root=host["root"]).status == 200


def test_deploys_of_each_environment_under_load_on_all_three_fail_no_request(host):
    root, https = host["root"], host["https"]
    a, b = host["a"], host["b"]
    a.write("app/__init__.py", (a.path / "app/__init__.py").read_text() + "\n# front deploy under load\n")
    a.commit("a change for the deploys under load")
    b.write("app/__init__.py", (b.path / "app/__init__.py").read_text() + "\n# front deploy under load\n")
    b.commit("a change for the deploys under load")
    loads = [NamedLoad(site.name, https, "/api/health", root=root, rate=7) for site in host["sites"]]
    for load in loads:
        load.start()
    try:
        for site in host["sites"]:
            site.deploy()
        for load in loads:
            load.wait(2)
    finally:
        reports = [load.stop() for load in loads]
    for site, report in zip(host["sites"], reports, strict=True):
        assert report.failed == 0, f"{site.name}: {report.describe()}"
        assert report.requests > 100
        assert report.last_revision() == site.project.head(), site.name
    print("\nunder load (7 req/s per name, 21 in all, over HTTPS): "
          + ", ".join(f"{s.name}: {r.requests} requests, {r.failed} failed" for s, r in zip(host["sites"], reports, strict=True)))


def test_maintenance_on_and_off_under_load_serves_the_page_and_leaves_the_others_untouched(host):
    root, https = host["root"], host["https"]
    a = host["a"]
    staging = host["sites"][1]
    loads = [NamedLoad(s.name, https, "/api/health", root=root, rate=7) for s in host["sites"]]
    for load in loads:
        load.start()
    try:
        on = a.inv("deploy.maintenance", "--env", "staging", "--message", "Back at 14:00 <UTC>")
        assert "maintenance on for staging (staging.a.app.test)" in on.stdout
        page = get(staging.name, https, "/api/health", root=root)
        assert page.status == 503 and page.headers["retry-after"] == "300", page
        assert "Back at 14:00 &lt;UTC&gt;" in page.body
        # A deploy meanwhile proves the release on its own port and keeps maintenance on.
        deployed = staging.deploy()
        assert "(in maintenance)" in deployed.stdout
        assert get(staging.name, https, "/", root=root).status == 503
        off = a.inv("deploy.live", "--env", "staging")
        assert "staging is live again" in off.stdout
        assert get(staging.name, https, "/api/health", root=root).status == 200
        for load in loads:
            load.wait(2)
    finally:
        reports = [load.stop() for load in loads]
    for site, report in zip(host["sites"], reports, strict=True):
        if site is staging:
            assert report.failed > 0 and all(s.status == 503 for s in report.failures), report.describe()
            assert report.samples[-1].status == 200
        else:
            assert report.failed == 0, f"{site.name}: {report.describe()}"
    history = (a.path / ".deploy" / "staging" / "history.jsonl").read_text().splitlines()
    assert len([line for line in history if '"maintenance"' in line or '"live"' in line]) == 2


def test_a_restart_of_the_front_proxy_keeps_its_certificates(host):
    pebble, root, https = host["pebble"], host["root"], host["https"]
    issued = pebble.issued_serials()
    before = {site.name: served_certificate(site.name, https, root).serial_number for site in host["sites"]}
    running = [c.split()[0] for c in front_containers(host["front_name"]) if c.endswith("running")][0]
    docker("restart", "-t", "10", running, check=True)
    for site in host["sites"]:
        assert wait_get(site.name, https, "/api/health", root=root).status == 200
        assert served_certificate(site.name, https, root).serial_number == before[site.name]
    assert pebble.issued_serials() == issued


def _self_signed(directory, name):
    import datetime

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert, cert_path, key_path


def test_certificate_files_are_served_instead_of_asking_the_ca(host):
    name = "files.b.app.test"
    b, pebble, https, http = host["b"], host["pebble"], host["https"], host["http"]
    cert, cert_path, key_path = _self_signed(host["base"], name)
    b.configure(environments={"files": {"compose_file": "docker-compose.test.yml", "project": f"{b.name}-files",
                                        "public_port": free_port(), "drain_seconds": 2, "hosts": [name],
                                        "tls_certificate": str(cert_path), "tls_key": str(key_path)}})
    issued = pebble.issued_serials()
    result = b.inv("deploy.env", "--env", "files")
    assert f"HTTPS: {name} (certificate files); HTTP redirects there" in result.stdout, result.stdout[-2000:]
    assert served_certificate(name, https, cert_path).serial_number == cert.serial_number
    assert wait_get(name, https, "/api/health", root=cert_path).status == 200
    assert get(name, http, "/").status == 308
    assert pebble.issued_serials() == issued
    copied = host["base"] / "front-dir" / "certs" / f"{b.name}-files.key"
    assert copied.stat().st_mode & 0o077 == 0  # the key's copy is readable by its owner only


def test_an_environment_moves_from_its_own_port_to_a_host_name_and_back_without_a_failed_request(host):
    from tests.support.load import Load

    name = "moved.b.app.test"
    b, root, https = host["b"], host["root"], host["https"]
    port = free_port()
    b.configure(environments={"moved": {"compose_file": "docker-compose.test.yml", "project": f"{b.name}-moved",
                                        "public_port": port, "drain_seconds": 2}})
    first = b.inv("deploy.env", "--env", "moved")
    assert "==> front" not in first.stdout  # no hosts: served on its port only, as before
    with Load(f"http://127.0.0.1:{port}/api/health", rate=10) as load:
        b.configure(environments={"moved": {"hosts": [name]}})
        moved = b.inv("deploy.env", "--env", "moved")
        assert wait_get(name, https, "/api/health", root=root).status == 200, moved.stdout[-2000:]
        b.configure(environments={"moved": {"hosts": []}})
        back = b.inv("deploy.env", "--env", "moved")
        load.wait(2)
    report = load.report()
    assert report.failed == 0, report.describe()
    assert "routed no more" in back.stdout
    assert get(name, host["http"], "/").status == 404  # the front proxy no longer knows the name
    assert not (host["base"] / "front-dir" / "routes" / f"{b.name}-moved.json").exists()
    assert wait_get("b.app.test", https, "/api/health", root=root).status == 200  # the others keep their routes


def test_a_new_front_image_replaces_the_proxy_beside_itself_under_load(host):
    # A different image (same Caddy, one label more) is an upgrade: a new container starts beside the old one on
    # the same ports and the old one stops after it.
    name = f"{host['front_name']}-caddy:next"
    build = subprocess.run(["docker", "build", "-q", "-t", name, "-"], input=f"FROM {CADDY_IMAGE}\nLABEL next=1\n",
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    site = host["sites"][2]
    site.project.configure(front_image=name)
    pebble, root, https = host["pebble"], host["root"], host["https"]
    issued = pebble.issued_serials()
    loads = [NamedLoad(s.name, https, "/api/health", root=root, rate=7) for s in host["sites"]]
    for load in loads:
        load.start()
    try:
        result = site.deploy()
        for load in loads:
            load.wait(2)
    finally:
        reports = [load.stop() for load in loads]
    assert "replaced the front proxy" in result.stdout, result.stdout[-2000:]
    containers = front_containers(host["front_name"])
    assert len(containers) == 1 and containers[0].endswith("running"), containers
    image = docker("inspect", "--format", "{{.Config.Image}}", containers[0].split()[0]).stdout.strip()
    assert image == name
    for s, report in zip(host["sites"], reports, strict=True):
        assert report.failed == 0, f"{s.name}: {report.describe()}"
    assert pebble.issued_serials() == issued  # the certificates came along in the volume
    # Every environment keeps the image it set: the others' next deploy would move it back, so align them.
    for project in (host["a"],):
        project.configure(front_image=name)
