"""The restart plan and its branches, against the modelled engine of tests/unit/fakes.py and real HTTP: the app is
replaced through the deploy's rollout, the services that cannot be rolled are recreated one at a time, ``--hard``
is one ``compose restart``, and the history line carries the env file's checksum, never its values.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from droplet_deploy.commands import files
from droplet_deploy.commands.compose import Compose
from droplet_deploy.core.errors import NotDeployed, RolloutFailed, UsageError
from droplet_deploy.engines.base import RestartPlan
from droplet_deploy.engines.compose.state import parse_inspect
from droplet_deploy.engines.snapshot import Snapshot
from droplet_deploy.operations import restart, status
from droplet_deploy.transaction import env_file as envfile
from droplet_deploy.transaction import history

from .fakes import PROJECT, Engine, FakeTarget, engine_settings
from .test_ops import _status
from .test_rollout_branches import OLD, OLD_IMAGE, apps, serving_old, session_on

ENV_BEFORE, ENV_NOW = "APP_SECRET_KEY=first-value\n", "APP_SECRET_KEY=rotated-value\n"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def with_worker(engine: Engine):
    old = serving_old(engine)
    worker = engine.add("worker", "worker", None)
    return old, worker


def deployed_with(env_text: str) -> str:
    """The history of one deploy that started the app with ``env_text`` as its env file."""
    return json.dumps({"revision": OLD, "image": OLD_IMAGE, "env": "test", "who": "me", "started_at": 1,
                       "duration_s": 1.0, "result": "ok", "action": "deploy",
                       "env_sha256_after": digest(env_text)}) + "\n"


@pytest.fixture
def engine():
    made = Engine(images={OLD_IMAGE: OLD})
    yield made
    made.close()


@pytest.fixture
def settings(root):
    return engine_settings(root)


@pytest.fixture
def env_settings(settings):
    return settings.replace(env_file=".env")


def restart_on(engine: Engine, settings, service: str | None = None, *, hard: bool = False, dry: bool = False):
    target = FakeTarget(engine, dry=dry)
    target.tail = deployed_with(ENV_BEFORE)
    if settings.env_file_path:
        target.files[settings.env_file_path] = ENV_NOW
    session, out = session_on(target, settings)
    restart.restart(session, service, hard=hard)
    return target, out.getvalue()


def recorded(target: FakeTarget) -> list[dict]:
    return [json.loads(argv[4]) for argv in target.runs if argv[:2] == ("sh", "-c") and argv[3] == "append"]


def compose_commands(target: FakeTarget, verb: str) -> list[tuple[str, ...]]:
    return [argv for argv in target.runs if "compose" in argv and verb in argv]


# -- the plan (pure) -------------------------------------------------------------------------------------------


def snapshot_of(engine: Engine) -> Snapshot:
    parsed = parse_inspect(json.dumps([c.inspect() for c in engine.containers]))
    return Snapshot("app", "proxy", tuple(parsed), engine.upstream)


def test_a_plain_restart_rolls_the_app_recreates_the_worker_and_keeps_the_proxy(engine):
    with_worker(engine)
    chosen = restart.plan(snapshot_of(engine))
    assert (chosen.roll, chosen.one_by_one, chosen.left_running, chosen.hard) == (True, ("worker",), ("proxy",), False)
    assert chosen.describe() == "app (rolled, no downtime), worker (one at a time)"


@pytest.mark.parametrize("services, roll, one_by_one", [
    (["app"], True, ()),
    (["proxy"], False, ("proxy",)),
    (["worker", "app"], True, ("worker",)),
])
def test_named_services_are_the_only_ones_touched(engine, services, roll, one_by_one):
    with_worker(engine)
    chosen = restart.plan(snapshot_of(engine), services)
    assert (chosen.roll, chosen.one_by_one, chosen.left_running) == (roll, one_by_one, ())


def test_hard_is_one_compose_restart_of_what_was_named(engine):
    with_worker(engine)
    assert restart.plan(snapshot_of(engine), ["worker"], hard=True) == RestartPlan(hard=True, services=("worker",))
    assert restart.plan(snapshot_of(engine), hard=True).describe() == "all services at once (--hard)"


# -- the step on the modelled engine ----------------------------------------------------------------------------


def test_restart_replaces_the_app_through_the_rollout_then_the_worker_and_records_the_env_checksums(
        engine, env_settings):
    old, worker = with_worker(engine)
    target, out = restart_on(engine, env_settings)

    [new] = [c for c in engine.running("app")]
    assert new.id != old.id and new.image == OLD_IMAGE and new.revision == OLD, "the serving image, a new container"
    assert engine.upstream == new.name and apps(engine) == [(OLD, True)]
    [scaled] = compose_commands(target, "--scale")
    [recreated] = compose_commands(target, "--force-recreate")
    assert recreated[-3:] == ("--no-deps", "--force-recreate", "worker")
    assert target.runs.index(scaled) < target.runs.index(recreated), "the app first, then the worker on its own"
    assert engine.running("worker")[0].id != worker.id
    assert not any("proxy" in argv[-1:] for argv in compose_commands(target, "up")), "the proxy kept running"

    [line] = recorded(target)
    assert (line["action"], line["result"], line["revision"], line["image"]) == ("restart", "ok", OLD, OLD_IMAGE)
    assert (line["env_sha256_before"], line["env_sha256_after"]) == (digest(ENV_BEFORE), digest(ENV_NOW))
    assert "rotated-value" not in json.dumps(line) + out and "first-value" not in out
    assert f"CHANGED since the last deploy (sha256 {digest(ENV_BEFORE)[:12]} -> {digest(ENV_NOW)[:12]})" in out
    assert "worker: recreated on its own (not behind the proxy, so it cannot be rolled)" in out
    assert "restarted app (rolled, no downtime), worker (one at a time) of test on fake in" in out
    assert f"healthy at revision {OLD[:12]}" in out


def test_hard_runs_one_compose_restart_says_it_costs_downtime_and_the_environment_stays(engine, env_settings):
    old, _ = with_worker(engine)
    target, out = restart_on(engine, env_settings, hard=True)
    [command] = compose_commands(target, "restart")
    assert command[-1] == "restart", "every service, at once"
    assert not compose_commands(target, "up") and engine.running("app")[0].id == old.id
    assert "at once (--hard, `compose restart`): this costs downtime" in out
    assert "`inv deploy.restart` without --hard applies the change" in out
    [line] = recorded(target)
    assert line["env_sha256_before"] == line["env_sha256_after"] == digest(ENV_BEFORE), "the app kept its env"


def test_a_named_worker_is_recreated_alone_and_the_app_is_left_as_it_is(engine, settings):
    old, _ = with_worker(engine)
    target, out = restart_on(engine, settings, "worker")
    assert not compose_commands(target, "--scale") and engine.running("app")[0].id == old.id
    assert len(compose_commands(target, "--force-recreate")) == 1
    assert "restarted worker (one at a time) of test on fake" in out
    assert "env file" not in out, "no env file configured: nothing to say about one"
    assert recorded(target)[0]["env_sha256_after"] == ""


def test_a_failed_rollout_leaves_the_old_app_serving_touches_no_worker_and_is_recorded(engine, env_settings):
    old, worker = with_worker(engine)
    # A new container of the serving image answers 503; the old one, started before, keeps answering 200.
    engine.answers[OLD] = (503, json.dumps({"status": "unhealthy", "revision": OLD}))
    with pytest.raises(RolloutFailed) as failed:
        restart_on(engine, env_settings)
    assert f"{old.name} still serving revision {OLD[:12]}" in str(failed.value)
    assert engine.upstream == old.name and [c.id for c in engine.running("app")] == [old.id]
    assert engine.running("worker")[0].id == worker.id


def test_a_stopped_app_is_refused_with_the_start_command_and_nothing_runs(engine, settings):
    old = serving_old(engine)
    old.running = False
    with pytest.raises(NotDeployed) as refused:
        restart_on(engine, settings)
    assert "app is not running on fake: there is nothing to roll" in str(refused.value)
    assert refused.value.hint == "start it: inv deploy.start"


def test_an_unknown_service_names_the_services_there_are(engine, settings):
    with_worker(engine)
    with pytest.raises(UsageError) as refused:
        restart_on(engine, settings, "db")
    assert "use one of: app, proxy, worker" in str(refused.value)


def test_nothing_deployed_is_one_line(engine, settings):
    with pytest.raises(NotDeployed) as refused:
        restart_on(engine, settings)
    assert f"nothing to restart: no containers of {PROJECT}" in str(refused.value)


def test_a_dry_run_walks_the_rollout_and_changes_nothing(engine, env_settings):
    old, worker = with_worker(engine)
    target, out = restart_on(engine, env_settings, dry=True)
    plan = "\n".join(target.said)
    assert "--scale app=2" in plan and "--force-recreate worker" in plan
    assert [c.id for c in engine.containers] == [c.id for c in engine.containers if c.running]
    assert engine.running("app")[0].id == old.id and engine.running("worker")[0].id == worker.id
    assert recorded(target) == [] and "planned: restart app (rolled, no downtime)" in out


# -- the checksum and what status says about it ----------------------------------------------------------------


def test_the_checksum_is_computed_on_the_target_from_an_argv():
    assert files.sha256("/srv/x/shared/.env; rm -rf /") == ["sha256sum", "--", "/srv/x/shared/.env; rm -rf /"]
    assert Compose("p", "c.yml").up(["worker"], no_deps=True, force_recreate=True)[-4:] == [
        "--detach", "--no-deps", "--force-recreate", "worker"]


@pytest.mark.parametrize("stdout, found", [
    ("a" * 64 + "  /srv/shop/shared/.env\n", "a" * 64),
    ("\\" + "b" * 64 + "  /srv/odd\\nname\n", "b" * 64),  # sha256sum escapes a name with a newline
    ("", ""),
    ("sha256sum: .env: Permission denied\n", ""),
])
def test_sha256sum_output_is_parsed(stdout, found):
    assert envfile.parse_sha256(stdout) == found


def _record(action: str, result: str, after: str) -> history.Record:
    return history.Record(OLD, OLD_IMAGE, "test", "me", 1.0, 1.0, result, action=action, env_sha256_after=after)


def test_the_checksum_that_runs_is_the_last_successful_release_or_restart_that_recorded_one():
    records = [_record("deploy", "ok", "1" * 64), _record("restart", "ok", "2" * 64),
               _record("restart", "failed", "3" * 64), _record("start", "ok", ""), _record("deploy", "ok", "")]
    assert envfile.last_applied(records).env_sha256_after == "2" * 64
    assert envfile.last_applied(records[2:]) is None


def test_status_says_the_env_file_changed_and_how_to_apply_it():
    changed = envfile.Drift("/srv/shop/shared/.env", "9" * 64, _record("restart", "ok", "2" * 64))
    lines = status.render(_status(env_file=changed), restart_hint="inv deploy.restart --host prod")
    [line] = [line for line in lines if line.startswith("  env file")]
    assert line == (f"  env file   /srv/shop/shared/.env: CHANGED since the last restart (sha256 {'2' * 12} -> "
                    f"{'9' * 12}); the running app does not have it yet: `inv deploy.restart --host prod` applies it "
                    "without downtime")
    same = envfile.Drift("/srv/shop/shared/.env", "2" * 64, _record("deploy", "ok", "2" * 64))
    assert f"unchanged since the last deploy (sha256 {'2' * 12})" in "\n".join(status.render(_status(env_file=same)))
    assert not any(line.startswith("  env file") for line in status.render(_status()))
