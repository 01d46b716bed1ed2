"""Every branch of the rollout and of rollback, against a modelled engine (tests/unit/fakes.py) and real HTTP.

Each test asserts what the user's site is left with: which container the proxy routes to, which containers
exist, and what the command said. The integration tests run the same code on the real engine.
"""

from __future__ import annotations

import dataclasses
import io
import json

import pytest

from droplet_deploy.core.errors import RollbackImpossible, RolloutFailed
from droplet_deploy.core.ui import Reporter
from droplet_deploy.engines import ComposeBackend
from droplet_deploy.engines.compose.rollout import rollout
from droplet_deploy.engines.compose.stack import Stack
from droplet_deploy.pipeline.rollback import rollback
from droplet_deploy.session import Session

from .fakes import PROJECT, Engine, FakeTarget, engine_settings

OLD, NEW = "a" * 40, "b" * 40
OLD_IMAGE, NEW_IMAGE = "shop:" + OLD[:12], "shop:" + NEW[:12]


@pytest.fixture
def engine():
    made = Engine(images={OLD_IMAGE: OLD, NEW_IMAGE: NEW})
    yield made
    made.close()


@pytest.fixture
def settings(root):
    return engine_settings(root)


def serving_old(engine: Engine):
    engine.add("proxy", "nginx", None)
    old = engine.add("app", OLD_IMAGE, OLD)
    engine.upstream = old.name
    return old


def deploy_new(engine: Engine, settings, *, dry: bool = False) -> tuple[FakeTarget, list[str], object]:
    target = FakeTarget(engine, dry=dry)
    said: list[str] = []
    outcome = rollout(Stack(target, settings), NEW_IMAGE, NEW, say=said.append)
    return target, said, outcome


def failing_deploy(engine: Engine, settings) -> tuple[FakeTarget, list[str], str]:
    target = FakeTarget(engine)
    said: list[str] = []
    with pytest.raises(RolloutFailed) as failed:
        rollout(Stack(target, settings), NEW_IMAGE, NEW, say=said.append)
    return target, said, str(failed.value)


def apps(engine: Engine) -> list[tuple[str, bool]]:
    return [(c.revision, c.running) for c in engine.containers if c.service == "app"]


def test_a_healthy_release_takes_the_traffic_and_the_old_one_drains(engine, settings):
    old = serving_old(engine)
    target, said, outcome = deploy_new(engine, settings)
    assert outcome.container.revision == NEW and outcome.previous.id == old.id and not outcome.first_deploy
    assert engine.upstream == outcome.container.name
    assert apps(engine) == [(NEW, True)], "the old container was stopped and removed"
    assert ("docker", "stop", "--time", "1", old.id) in target.runs, "the old one got its drain time"


def test_the_switch_returns_once_nginx_serves_the_new_config_and_the_drain_waits_for_its_old_workers(engine,
                                                                                                     settings):
    from droplet_deploy.commands import proxy as proxy_cmd

    old = serving_old(engine)
    target, said, outcome = deploy_new(engine, settings)
    calls = target.calls
    [switch] = [i for i, argv in enumerate(calls) if proxy_cmd.SWITCH_UPSTREAM in argv]
    assert calls[switch][-1] == "return", "the rollout's switch does not wait for the old workers"
    [wait] = [i for i, argv in enumerate(calls) if proxy_cmd.WAIT_WORKERS in argv]
    stop = calls.index(("docker", "stop", "--time", "1", old.id))
    assert switch < wait < stop, "the old container stops only once nginx's old workers are gone"
    assert calls[wait][-2:] == ("41", "42"), "it waits for the workers the switch named"
    assert engine.upstream == outcome.container.name


def test_given_defer_the_rollout_returns_once_traffic_moved_and_the_old_one_drains_beside(engine, settings):
    old = serving_old(engine)
    target, said = FakeTarget(engine), []
    deferred = []
    outcome = rollout(Stack(target, settings), NEW_IMAGE, NEW, say=said.append,
                      defer=lambda work, name: deferred.append((name, work)))
    assert engine.upstream == outcome.container.name, "traffic moved before the rollout returned"
    assert apps(engine) == [(OLD, True), (NEW, True)], "the old one is still there when the rollout returns"
    assert [name for name, _ in deferred] == ["drain"]
    assert said[-1].endswith("(up to 1s), meanwhile going on")
    deferred[0][1]()
    assert apps(engine) == [(NEW, True)]
    assert ("docker", "stop", "--time", "1", old.id) in target.runs, "the old one still got its drain time"


def test_a_release_that_never_gets_healthy_is_removed_and_the_old_one_keeps_serving(engine, settings):
    old = serving_old(engine)
    engine.answers[NEW] = (503, json.dumps({"status": "unhealthy", "revision": NEW}))
    _, said, message = failing_deploy(engine, settings)
    assert "new release never became healthy: not healthy after 1.5s" in message
    assert f"{old.name} still serving revision {OLD[:12]}" in message
    assert engine.upstream == old.name and apps(engine) == [(OLD, True)]


def test_a_release_reporting_another_revision_never_takes_traffic(engine, settings):
    serving_old(engine)
    engine.answers[NEW] = (200, json.dumps({"status": "healthy", "revision": OLD}))
    _, _, message = failing_deploy(engine, settings)
    assert f"still serving revision {OLD[:12]}, expected {NEW[:12]}" in message
    assert apps(engine) == [(OLD, True)]


def test_nginx_rejecting_the_new_upstream_leaves_traffic_where_it_was(engine, settings):
    old = serving_old(engine)
    engine.nginx_rejects = True
    _, _, message = failing_deploy(engine, settings)
    assert "proxy did not take the new upstream" in message and "nginx rejected the upstream" in message
    assert engine.upstream == old.name and apps(engine) == [(OLD, True)]


def test_a_failed_check_after_the_switch_sends_traffic_back_and_drains_the_new_one(engine, settings):
    old = serving_old(engine)

    def break_new_after_switch(argv):
        if engine.upstream != old.name:  # the switch to the new container just happened
            engine.by_name(engine.upstream).server.status = 500

    engine.after = break_new_after_switch
    target, said, message = failing_deploy(engine, settings)
    assert "new release failed after the switch" in message
    assert engine.upstream == old.name, "traffic went back"
    assert f"switching traffic back to {old.name}" in said
    assert apps(engine) == [(OLD, True)], "the new container was drained and removed"
    assert any(argv[:2] == ("docker", "stop") and argv[2:4] == ("--time", "1") for argv in target.runs)


def test_an_old_container_that_will_not_stop_is_removed_by_force_and_the_deploy_stands(engine, settings):
    old = serving_old(engine)
    engine.stop_fails = True
    target, said, outcome = deploy_new(engine, settings)
    assert outcome.container.revision == NEW and engine.upstream == outcome.container.name
    assert any("drain did not finish cleanly" in line and "by force" in line for line in said)
    assert ("docker", "rm", "--force", old.id) in target.runs and apps(engine) == [(NEW, True)]


def interrupted(engine: Engine, settings, when) -> list[str]:
    """Deploy the new release, raising KeyboardInterrupt (as a signal does) after the first command ``when`` picks."""
    def interrupt(argv):
        if when(argv):
            engine.after = None
            raise KeyboardInterrupt

    engine.after = interrupt
    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        rollout(Stack(FakeTarget(engine), settings), NEW_IMAGE, NEW, say=said.append)
    return said


def test_interrupted_before_the_switch_removes_the_new_container(engine, settings):
    old = serving_old(engine)
    said = interrupted(engine, settings, lambda argv: " up --detach" in " ".join(argv))
    assert engine.upstream == old.name and apps(engine) == [(OLD, True)]
    assert any(line.startswith("interrupted: removing") for line in said)


def test_interrupted_after_the_switch_goes_back_to_the_old_release(engine, settings):
    old = serving_old(engine)
    said = interrupted(engine, settings, lambda argv: engine.upstream != old.name)
    assert engine.upstream == old.name and apps(engine) == [(OLD, True)]
    assert "interrupted after the switch: going back to the release that served before" in said


def test_a_first_deploy_starts_the_whole_stack_with_the_upstream_on_the_service(engine, settings):
    target, said, outcome = deploy_new(engine, settings)
    assert outcome.first_deploy and outcome.previous is None and outcome.container.revision == NEW
    resets = [argv for argv in target.runs if " run --rm " in " ".join(argv)]
    assert resets and resets[0][-3:] == ("/etc/nginx/upstream/app.conf", "app", "8000")
    assert engine.upstream == outcome.container.name, "then pinned to the proven container"


def test_leftovers_of_a_killed_deploy_are_cleared_before_anything_starts(engine, settings):
    old = serving_old(engine)
    stopped = engine.add("app", NEW_IMAGE, NEW, running=False)
    orphan = engine.add("app", NEW_IMAGE, NEW)
    target, said, outcome = deploy_new(engine, settings)
    assert ("docker", "rm", "--force", stopped.id) in target.runs
    assert any(argv[:2] == ("docker", "stop") and orphan.id in argv for argv in target.runs)
    assert outcome.previous.id == old.id and apps(engine) == [(NEW, True)]


BAD = "c" * 40
BAD_IMAGE = "shop:" + BAD[:12]


def killed_after_the_switch(engine: Engine, *, healthy: bool):
    """What a deploy SIGKILLed between the switch and its checks leaves: the proxy on its new container, the old
    proven one running beside it."""
    old = serving_old(engine)
    engine.images[BAD_IMAGE] = BAD
    if not healthy:
        engine.answers[BAD] = (500, '{"status": "error"}')
    unproven = engine.add("app", BAD_IMAGE, BAD)
    engine.upstream = unproven.name
    return old, unproven


def test_after_a_kill_past_the_switch_an_unproven_serving_container_gives_the_traffic_back_first(engine, settings):
    old, unproven = killed_after_the_switch(engine, healthy=False)
    target, said, outcome = deploy_new(engine, settings)
    switches = [argv for argv in target.runs if argv[:2] == ("docker", "exec") and old.name in argv]
    first_stop_of_old = next(i for i, argv in enumerate(target.runs) if argv[:2] == ("docker", "stop")
                             and old.id in argv)
    back = target.runs.index(switches[0])
    stop_of_unproven = next(i for i, argv in enumerate(target.runs) if argv[:2] == ("docker", "stop")
                            and unproven.id in argv)
    assert back < stop_of_unproven < first_stop_of_old, "traffic back on the proven one before anything retires"
    assert any(f"switching traffic back to {old.name}" in line for line in said), said
    assert outcome.previous.id == old.id
    assert [r for r, running in apps(engine) if running] == [NEW]


def test_after_a_kill_past_the_switch_a_serving_container_that_proves_itself_stays_in_charge(engine, settings):
    old, unproven = killed_after_the_switch(engine, healthy=True)
    target, said, outcome = deploy_new(engine, settings)
    assert not any("switching traffic back" in line for line in said), said
    assert any(f"removing {old.name}, left running by an interrupted deploy" in line for line in said)
    assert outcome.previous.id == unproven.id
    assert [r for r, running in apps(engine) if running] == [NEW]


def test_a_dry_run_walks_every_phase_and_changes_nothing(engine, settings):
    old = serving_old(engine)
    target, _, outcome = deploy_new(engine, settings, dry=True)
    plan = target.said
    order = [next((i for i, line in enumerate(plan) if step in line), None) for step in
             ("--scale app=2", "wait up to 1.5s", f"switch proxy to {PROJECT}-app-2", "check /api/health",
              f"docker stop --time 1 {old.id}")]
    assert None not in order and order == sorted(order), plan
    assert engine.upstream == old.name and apps(engine) == [(OLD, True)]


# -- rollback -------------------------------------------------------------------------------------------------


def history_of(*records: tuple[str, str]) -> str:
    return "".join(json.dumps({"revision": rev, "image": image, "env": "test", "who": "me", "started_at": n,
                               "duration_s": 1.0, "result": "ok", "action": "deploy"}) + "\n"
                   for n, (rev, image) in enumerate(records))


# A compose file already in the toolkit's shape (its own proxy, no fixed name or host port): no override.
COMPOSE = """services:
  app:
    image: ${APP_IMAGE}
    expose: ["8000"]
  proxy:
    image: ${PROXY_IMAGE}
    ports: ["${PUBLIC_PORT}:80"]
"""


def session_on(target: FakeTarget, settings) -> tuple[Session, io.StringIO]:
    target.files[settings.compose_file] = COMPOSE
    out = io.StringIO()
    session = Session(settings, target, target, Reporter(out))
    ComposeBackend(session)
    return session, out


def test_rollback_brings_the_previous_release_back_from_its_kept_image(engine, settings):
    engine.add("proxy", "nginx", None)
    new = engine.add("app", NEW_IMAGE, NEW)
    engine.upstream = new.name
    target = FakeTarget(engine)
    target.tail = history_of((OLD, OLD_IMAGE), (NEW, NEW_IMAGE))
    session, out = session_on(target, settings)
    rollback(session)
    assert apps(engine) == [(OLD, True)] and engine.by_name(engine.upstream).revision == OLD
    [line] = [json.loads(argv[4]) for argv in target.runs if argv[:2] == ("sh", "-c") and argv[3] == "append"]
    assert line["action"] == "rollback" and line["revision"] == OLD and line["result"] == "ok"
    assert f"rolled back to {OLD[:12]} on test" in out.getvalue()


def test_rollback_to_a_pruned_image_says_what_is_kept_and_touches_nothing(engine, settings):
    del engine.images[OLD_IMAGE]
    engine.add("proxy", "nginx", None)
    new = engine.add("app", NEW_IMAGE, NEW)
    engine.upstream = new.name
    target = FakeTarget(engine)
    target.tail = history_of((OLD, OLD_IMAGE), (NEW, NEW_IMAGE))
    session, _ = session_on(target, settings)
    with pytest.raises(RollbackImpossible) as refused:
        rollback(session)
    assert f"image {OLD_IMAGE} of revision {OLD[:12]} is no longer kept (pruned)" in str(refused.value)
    assert f"kept revisions: {NEW[:12]} (serving)" in str(refused.value)
    assert target.runs == [] and apps(engine) == [(NEW, True)], "nothing ran: not even the lock"


WITH_WORKERS = COMPOSE + """\
  worker:
    image: ${APP_IMAGE}
    command: ["python3", "-m", "app.worker"]
  scheduler:
    image: ${APP_IMAGE}
"""


def test_services_on_the_release_follow_the_switch_and_services_first_go_before_the_app_starts(engine, root):
    settings = engine_settings(root)
    settings = dataclasses.replace(settings, services_first=["scheduler"])
    serving_old(engine)
    engine.add("worker", OLD_IMAGE, OLD)
    target = FakeTarget(engine)
    session, out = session_on(target, settings)
    target.files[settings.compose_file] = WITH_WORKERS
    session.backend.rollout(NEW_IMAGE, NEW, timeout=None)
    ups = [argv[-1] for argv in target.runs if "up" in argv]
    assert ups == ["scheduler", "app", "worker"], "scheduler first, then the app beside, the worker after the switch"
    assert {c.service: c.revision for c in engine.containers if c.running} == {
        "proxy": None, "app": NEW, "worker": NEW, "scheduler": NEW}
    assert f"worker runs {NEW[:12]}" in out.getvalue()


def test_a_service_that_does_not_come_up_at_the_revision_is_named(engine, settings):
    serving_old(engine)
    engine.stale["worker"] = OLD
    target = FakeTarget(engine)
    session, _ = session_on(target, settings)
    target.files[settings.compose_file] = WITH_WORKERS
    with pytest.raises(RolloutFailed, match=rf"service worker: shop-test-worker-\d+ runs {NEW_IMAGE}, labelled "
                                            rf"revision {OLD[:12]}, not {NEW[:12]}"):
        session.backend.rollout(NEW_IMAGE, NEW, timeout=None)
