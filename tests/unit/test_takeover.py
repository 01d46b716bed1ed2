"""Taking over a stack that runs today (droplet_deploy/engines/compose/takeover.py, handover.py): what preflight
makes of the containers and volumes it finds, and the first deploy's port handover on the modelled engine."""

from __future__ import annotations

import dataclasses

import pytest

from droplet_deploy.commands import docker
from droplet_deploy.core.errors import RolloutFailed
from droplet_deploy.engines.compose import state, takeover
from droplet_deploy.engines.compose.rollout import rollout
from droplet_deploy.engines.compose.stack import Stack
from droplet_deploy.engines.compose.takeover import Running, Volume

from .fakes import PROJECT, Engine, FakeTarget, engine_settings

NEW = "b" * 40
NEW_IMAGE = "shop:" + NEW[:12]
OVERRIDE = "/srv/shop/.deploy/test/compose.override.yml"


@pytest.fixture
def settings(root):
    return engine_settings(root)


def line(*fields: str) -> str:
    return "\t".join(fields)


def test_the_container_lines_and_volume_lines_docker_prints_are_read():
    out = "\n".join([line("c1", "shop-web-1", "shop", "web", "/srv/shop/docker-compose.yml,/srv/shop/extra.yml"),
                     line("c2", "nginx-by-hand", "", "", ""), "{\"ID\": \"x\"}", ""])
    assert takeover.parse_running(out) == [
        Running("c1", "shop-web-1", "shop", "web", ("/srv/shop/docker-compose.yml", "/srv/shop/extra.yml")),
        Running("c2", "nginx-by-hand", "", "", ())]
    assert takeover.parse_volumes("shop_data\tshop\tdata\nbroken\n") == [Volume("shop_data", "shop", "data")]
    assert state.parse_published({"8000/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8111"},
                                               {"HostIp": "::", "HostPort": "8111"}], "9000/tcp": None}) == (8111,)


def test_only_volumes_compose_prefixes_with_the_project_count():
    doc = {"volumes": {"data": None, "pg": {}, "shared": {"external": True}, "named": {"name": "fixed"}}}
    assert takeover.volume_keys(doc) == ["data", "pg"]


def test_the_stacks_own_app_on_the_port_is_a_takeover_and_another_project_names_the_setting(settings):
    own = takeover.port_item(settings, [Running("c1", f"{PROJECT}-app-1", PROJECT, "app", ())])
    assert own.ok and "this deploy hands it to the proxy" in own.detail
    other = takeover.port_item(settings, [Running("c1", "shop-app-1", "shop", "app", ())])
    assert not other.ok
    assert other.detail == ("8001 is published by shop-app-1 of the compose project 'shop' that runs today; to "
                            "take it over with its volumes set deploy.environments.test.project: shop")
    stray = takeover.port_item(settings, [Running("c9", "by-hand", "", "", ())])
    assert not stray.ok and "stop it or set deploy.environments.test.public_port" in stray.detail
    assert takeover.port_item(settings, []) is None


def test_a_fresh_volume_beside_one_with_the_same_services_data_stops_the_deploy(settings):
    related = takeover.related_projects(settings, "/srv/shop/docker-compose.yml",
                                        [Running("c1", "x", "legacy", "app", ("/srv/shop/docker-compose.yml",)),
                                         Running("c2", "y", "dev", "app", ("/srv/shop/docker-compose.dev.yml",))],
                                        [])
    assert related == {"legacy"}, "the project whose containers were made from this file, not another file's"
    volumes = [Volume("legacy_data", "legacy", "data"), Volume("other_data", "other", "data")]
    item = takeover.volume_item(settings, ["data"], volumes, related)
    assert not item.ok
    assert item.detail == (f"volume legacy_data of the compose project 'legacy' holds docker-compose.test.yml's "
                           f"'data'; a deploy as '{PROJECT}' would start on a new, empty {PROJECT}_data: set "
                           "deploy.environments.test.project: legacy to keep its data")
    # Once the stack's own volume exists (deployed before), the other project's is none of its business.
    mine = takeover.volume_item(settings, ["data"], [*volumes, Volume(f"{PROJECT}_data", PROJECT, "data")], related)
    assert mine.ok
    # A project that never ran this file is unrelated, even with a volume of the same name.
    assert takeover.volume_item(settings, ["data"], volumes, set()).ok


def test_another_environment_of_the_config_is_not_a_stack_to_take_over(settings):
    compose = "/srv/shop/docker-compose.yml"
    staging = dataclasses.replace(settings, sibling_projects=("shop-staging",))
    containers = [Running("c1", "x", "shop-staging", "app", (compose,)),
                  Running("c2", "y", "legacy", "app", (compose,))]
    assert takeover.related_projects(staging, compose, containers, []) == {"legacy"}
    assert takeover.related_projects(settings, compose, containers, []) == {"legacy", "shop-staging"}


def test_on_a_host_the_project_publishing_the_port_is_related(settings):
    # Over SSH the file sits in a release directory the toolkit made: the stack's own file is elsewhere.
    related = takeover.related_projects(settings, "/srv/app/releases/20250101-abc/docker-compose.yml", [],
                                        [Running("c1", "app-web-1", "app", "web", ())])
    assert related == {"app"}


# --- the handover, on the modelled engine -------------------------------------------------------------------


def seed_stack(engine: Engine):
    """A stack started by `compose up`: its app publishes the public port itself and no proxy runs."""
    old = engine.add("app", "shop-app", None)
    old.published = (8001,)
    return old


def takeover_deploy(engine: Engine, settings):
    target = FakeTarget(engine)
    said: list[str] = []
    stack = Stack(target, settings, overrides=(OVERRIDE,))
    return target, said, lambda: rollout(stack, NEW_IMAGE, NEW, say=said.append)


def test_the_port_moves_from_the_old_app_to_the_proxy_once_the_new_app_proved_itself(root, settings):
    engine = Engine(images={NEW_IMAGE: NEW})
    old = seed_stack(engine)
    try:
        target, said, deploy = takeover_deploy(engine, settings)
        outcome = deploy()
    finally:
        engine.close()
    (proxy,) = engine.running("proxy")
    assert outcome.container.revision == NEW and engine.upstream == outcome.container.name
    runs = [" ".join(r) for r in target.runs]
    created = next(i for i, r in enumerate(runs) if " up --no-start --no-deps --no-recreate proxy" in r)
    stopped = runs.index(" ".join(docker.stop([old.id], timeout=0)))
    started = runs.index(" ".join(docker.start([proxy.id])))
    assert created < stopped < started, "created before the old app stops; started once the port is free"
    assert any(r.startswith(f"docker cp /srv/shop/.deploy/test/proxy.nginx.conf {proxy.id}:") for r in runs)
    announced = next(i for i, text in enumerate(said) if text.startswith("handing port 8001"))
    measured = next(i for i, text in enumerate(said) if text.startswith("port 8001 handed over to"))
    assert announced < measured and "s from stopping" in said[measured]
    assert [c.running for c in engine.containers if c.service == "app"] == [True], "the old app is gone"


def test_a_proxy_that_cannot_start_gives_the_port_back_to_the_old_app(root, settings):
    engine = Engine(images={NEW_IMAGE: NEW}, proxy_start_fails=True)
    old = seed_stack(engine)
    try:
        target, said, deploy = takeover_deploy(engine, settings)
        with pytest.raises(RolloutFailed) as failed:
            deploy()
    finally:
        engine.close()
    assert f"{old.name} still serving" in str(failed.value)
    assert [(c.id, c.running) for c in engine.containers] == [(old.id, True)], "no proxy, no new app: as it was"
    assert any(text == f"giving port 8001 back to {old.name}" for text in said)


def test_a_dry_run_plans_the_handover(root, settings):
    engine = Engine(images={NEW_IMAGE: NEW})
    seed_stack(engine)
    try:
        target = FakeTarget(engine, dry=True)
        rollout(Stack(target, settings, overrides=(OVERRIDE,)), NEW_IMAGE, NEW, say=lambda text: None)
    finally:
        engine.close()
    assert any("hand port 8001 from" in text for text in target.said)
    assert not engine.running("proxy")
