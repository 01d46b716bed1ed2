"""Whether the site comes back when the host reboots (droplet_deploy/engines/compose/reboot.py), and the
preflight line that says so before the first reboot does."""

from __future__ import annotations

import pytest

from droplet_deploy.engines.compose import override_file as adopt
from droplet_deploy.engines.compose import reboot
from droplet_deploy.setup import doctor
from tests.unit.test_adopt import EXISTING, REPO, ScriptedTarget, on_stack, session_with, settings_for


def doc_of(app_policy: str | None, proxy_policy: str | None = None, *, with_proxy: bool = True) -> dict:
    app: dict = {"image": "${APP_IMAGE:-shop:1}", "expose": ["8000"]}
    if app_policy is not None:
        app["restart"] = app_policy
    services: dict = {"app": app, "db": {"image": "postgres:16"}}  # the database's policy is not the site's
    if with_proxy:
        services["proxy"] = {"image": "nginx", **({"restart": proxy_policy} if proxy_policy else {})}
    return {"services": services}


@pytest.mark.parametrize("policy, back", [
    ("always", True), ("unless-stopped", True), ("'unless-stopped'", True),
    ("no", False), ("on-failure", False), ("on-failure:3", False), (None, False),
])
def test_only_always_and_unless_stopped_start_again_with_the_engine(policy, back):
    assert reboot.comes_back(policy) is back


def test_an_own_proxy_without_a_policy_is_named_even_when_the_app_comes_back():
    down = reboot.stays_down(doc_of("unless-stopped"), "app", "proxy", proxy_added=False)
    assert down == ["proxy"]
    assert reboot.note(doc_of("unless-stopped", "always"), "app", "proxy", proxy_added=False) is None


def test_the_proxy_the_toolkit_adds_takes_the_apps_policy_so_only_the_app_is_named():
    doc = doc_of("on-failure", with_proxy=False)
    assert reboot.stays_down(doc, "app", "proxy", proxy_added=True) == ["app"]
    assert reboot.note(doc, "app", "proxy", proxy_added=True) == (
        "after a reboot app stays down (restart policy not always/unless-stopped): "
        "set `restart: unless-stopped` on app")


def test_preflight_says_when_a_reboot_takes_the_site_down_and_deploys_anyway(tmp_path):
    text = (REPO / "docker-compose.test.yml").read_text()  # the reference stack: no restart policy
    target = ScriptedTarget(text, "2.40.3")
    item = adopt.prepare(*on_stack(session_with(target, settings_for(tmp_path, text, app_service="app"))), "x:1")
    assert item.ok
    assert item.detail == ("docker-compose.yml deploys as written; after a reboot app and proxy stay down "
                           "(restart policy not always/unless-stopped): set `restart: unless-stopped` on app, proxy")


def test_preflight_says_nothing_more_when_the_site_comes_back(tmp_path):
    text = (REPO / "docker-compose.test.yml").read_text()
    for service in ("app", "proxy"):
        text = text.replace(f"\n  {service}:\n", f"\n  {service}:\n    restart: unless-stopped\n", 1)
    target = ScriptedTarget(text, "2.40.3")
    item = adopt.prepare(*on_stack(session_with(target, settings_for(tmp_path, text, app_service="app"))), "x:1")
    assert item.ok and item.detail == "docker-compose.yml deploys as written"
    # An adopted file: the app's `restart: always` carries over to the proxy the override adds.
    adopted = ScriptedTarget(EXISTING, "2.40.3")
    item = adopt.prepare(*on_stack(session_with(adopted, settings_for(tmp_path))), "x:1")
    assert item.ok and "after a reboot" not in item.detail
    assert "    restart: always\n" in next(iter(adopted.written.values())).split("\n  proxy:\n", 1)[1]


def test_doctor_warns_with_the_fix_and_passes_a_file_that_comes_back(tmp_path):
    text = (REPO / "docker-compose.test.yml").read_text()
    found = doctor._compose_shape(settings_for(tmp_path, text, app_service="app"))
    assert (found.label, found.failed) == ("WARN", False)
    assert found.detail == ("docker-compose.yml: after a reboot app and proxy stay down "
                            "(restart policy not always/unless-stopped)")
    assert found.fix == "set `restart: unless-stopped` on app, proxy"
    fine = doctor._compose_shape(settings_for(tmp_path, EXISTING))  # restart: always; the proxy is added
    assert fine.label == "PASS" and fine.detail.startswith("docker-compose.yml deploys with the toolkit's override")
