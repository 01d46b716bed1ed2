"""A renewal under load: Pebble issues 30-second certificates, the front proxy checks them every 2 s
(renew_check_interval) and renews each in the last third of its lifetime, in the running process, while
20 requests/s reach the name over HTTPS: none fails, and the served certificate is the new one."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.conftest import free_port, make_project, remove_project_resources
from tests.integration.test_front import CADDY_IMAGE, docker, front_containers
from tests.support.acme import ensure_pebble_available, running_pebble
from tests.support.front import NamedLoad, served_certificate, wait_get

pytestmark = pytest.mark.integration

NAME = "renew.app.test"
LIFETIME = 30


def test_a_short_lived_certificate_is_renewed_under_load_without_a_failed_request(tmp_path):
    reason = ensure_pebble_available()
    if reason:
        pytest.skip(reason)
    http, https = free_port(), free_port()
    front_name = f"dtfront{uuid.uuid4().hex[:8]}"
    (tmp_path / "p").mkdir()
    project = make_project(tmp_path / "p")
    try:
        with running_pebble(tmp_path / "pebble", http_port=http, validity_seconds=LIFETIME) as pebble:
            root = pebble.write_root(tmp_path / "root.pem")
            project.configure(http_port=http, https_port=https, front_admin_port=free_port(),
                              front_bind="127.0.0.1", front_name=front_name, front_dir=str(tmp_path / "front-dir"),
                              front_image=CADDY_IMAGE, acme_directory=pebble.directory_url,
                              acme_ca_bundle=str(pebble.ca_bundle), renew_check_interval=2,
                              environments={"test": {"hosts": [NAME]}})
            project.inv("deploy.test")
            assert wait_get(NAME, https, "/api/health", root=root).status == 200
            first = served_certificate(NAME, https, root)
            assert abs((first.not_valid_after_utc - first.not_valid_before_utc).total_seconds() - LIFETIME) <= 2
            with NamedLoad(NAME, https, "/api/health", root=root, rate=20, max_seconds=LIFETIME * 3) as load:
                serials = pebble.wait_for_issuance(2, timeout=LIFETIME * 2)
                deadline = time.monotonic() + 20
                renewed = served_certificate(NAME, https, root)
                while renewed.serial_number == first.serial_number and time.monotonic() < deadline:
                    time.sleep(0.3)
                    renewed = served_certificate(NAME, https, root)
                load.wait(3)
            report = load.report()
            assert renewed.serial_number == int(serials[1], 16)
            assert renewed.not_valid_before_utc > first.not_valid_before_utc
            assert report.failed == 0, report.describe()
            assert report.requests > 100
            print(f"\nrenewed under load: {report.requests} requests at 20/s, {report.failed} failed")
    finally:
        for line in front_containers(front_name):
            docker("rm", "-f", line.split()[0])
        docker("volume", "rm", "-f", f"{front_name}-data", f"{front_name}-config")
        remove_project_resources(project.name)
