"""The front proxy over SSH: a production environment on the test sshd (tests/support/sshd.py; the "host" is this
machine reached through a real OpenSSH server, so its containers land on this engine), served by name over HTTPS
with a certificate from Pebble (real HTTP-01 on the front's port), a second deploy under load with 0 failures, and
maintenance on and off, every command going through the one SSH connection."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import free_port, make_project, remove_project_resources
from tests.integration.test_front import CADDY_IMAGE, docker, front_containers
from tests.support.acme import ensure_pebble_available, running_pebble
from tests.support.front import NamedLoad, get, wait_get
from tests.support.sshd import ensure_sshd_available, running_sshd

pytestmark = pytest.mark.integration

NAME = "ssh.app.test"


def test_over_ssh_the_front_proxy_serves_by_name_over_https_deploys_under_load_and_switches_maintenance(tmp_path):
    for reason in (ensure_pebble_available(), ensure_sshd_available()):
        if reason:
            pytest.skip(reason)
    http, https, admin = free_port(), free_port(), free_port()
    front_name = f"dtfront{uuid.uuid4().hex[:8]}"
    (tmp_path / "p").mkdir()
    project = make_project(tmp_path / "p")
    srv = tmp_path / "srv"
    (srv / "shared").mkdir(parents=True)
    (srv / "shared" / ".env").write_text("APP_SECRET_KEY=front-over-ssh-0123456789abcdef\n")
    (srv / "shared" / ".env").chmod(0o600)
    try:
        with running_sshd(tmp_path / "sshd") as sshd, running_pebble(tmp_path / "pebble", http_port=http) as pebble:
            root = pebble.write_root(tmp_path / "root.pem")
            project.configure(environments={"prod": {
                "project": f"{project.name}-prod", "public_port": project.port, "host": "prod",
                "remote_dir": str(srv), "ssh_config": str(sshd.ssh_config), "known_hosts": str(sshd.known_hosts),
                "env_file": ".env", "drain_seconds": 2, "backup_before_deploy": False, "hosts": [NAME],
                "http_port": http, "https_port": https, "front_admin_port": admin, "front_bind": "127.0.0.1",
                "front_name": front_name, "front_dir": str(tmp_path / "front-dir"), "front_image": CADDY_IMAGE,
                "acme_directory": pebble.directory_url, "acme_ca_bundle": str(pebble.ca_bundle),
            }})
            first = project.inv("deploy.prod", "--host", "prod")
            assert "started the front proxy" in first.stdout
            assert f"https://{NAME}/api/health through the front proxy: healthy" in first.stdout, first.stdout[-2000:]
            answer = wait_get(NAME, https, "/api/health", root=root)
            assert answer.status == 200 and project.head() in answer.body, answer
            assert get(NAME, http, "/").status == 308
            assert f"http://{NAME}:{http}/.well-known/acme-challenge/" in pebble.log_text()
            # The route file and the config are on the host, in the front directory.
            assert (tmp_path / "front-dir" / "routes" / f"{project.name}-prod.json").is_file()
            issued = pebble.issued_serials()

            routes = project.path / "app" / "routes.py"
            routes.write_text(routes.read_text() + "\nRELEASE_NOTE = 'front over ssh'\n")
            head = project.commit("a change deployed over SSH behind the front proxy")
            with NamedLoad(NAME, https, "/api/health", root=root, rate=20) as load:
                second = project.inv("deploy.prod", "--host", "prod")
                load.wait(2)
            report = load.report()
            assert report.failed == 0, report.describe()
            assert report.last_revision() == head
            assert "started the front proxy" not in second.stdout
            assert pebble.issued_serials() == issued  # the name kept its certificate

            on = project.inv("deploy.maintenance", "--host", "prod", "--message", "over ssh")
            assert "maintenance on" in on.stdout
            page = get(NAME, https, "/api/health", root=root)
            assert page.status == 503 and page.headers["retry-after"] == "300" and "over ssh" in page.body
            project.inv("deploy.live", "--host", "prod")
            assert get(NAME, https, "/api/health", root=root).status == 200
            logins = sshd.log.read_text(errors="replace").count("Accepted publickey")
            assert logins == 4  # one connection per task: two deploys, maintenance, live
    finally:
        for line in front_containers(front_name):
            docker("rm", "-f", line.split()[0])
        docker("volume", "rm", "-f", f"{front_name}-data", f"{front_name}-config")
        remove_project_resources(project.name)
