"""Release hooks and deploy.exec without Docker: their settings, command lines, the watchdog that bounds a
post_deploy command, and the steps that run them.

Real here: processes (the watchdog, post_deploy commands and the deploy lock and history run on this machine
through a LocalTarget) and HTTP (`droplet-deploy notify` posts to a local server). Modelled: the engine, for the
compose commands of pre_switch and deploy.exec (tests/unit/fakes.py), which the integration tests run for real.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from invoke import Config, Context

from droplet_deploy.commands import docker
from droplet_deploy.commands import hooks as hooks_cmd
from droplet_deploy.commands.compose import Compose
from droplet_deploy.core import config
from droplet_deploy.core.errors import CommandFailed, ConfigError, HookFailed, NotDeployed, UsageError
from droplet_deploy.core.ui import Reporter
from droplet_deploy.engines import ComposeBackend
from droplet_deploy.operations import one_off as one_off_ops
from droplet_deploy.session import Session
from droplet_deploy.tasks.flags import command_flag
from droplet_deploy.transaction import hooks, lock
from droplet_deploy.transaction.frame import Transaction
from droplet_deploy.transport.target import LocalTarget, Result, command_line

from .fakes import PROJECT, Engine, FakeTarget

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "x; rm -rf / #$(reboot)"
MIGRATE = ["python3", "-m", "app", "migrate"]
REV = "c" * 40


def load(root, hooks_raw=None, env_hooks=None):
    env = {"project": PROJECT}
    if env_hooks is not None:
        env["hooks"] = env_hooks
    raw = {"app_name": "shop", "environments": {"test": env}}
    if hooks_raw is not None:
        raw["hooks"] = hooks_raw
    return config.load(raw, "test", root=root)


# --- settings -----------------------------------------------------------------------------------------------------


def test_hooks_default_to_none(root):
    assert load(root).hooks == config.Hooks((), (), 30.0)


def test_hooks_are_argv_lists_and_an_environment_replaces_only_the_hooks_it_names(root):
    settings = load(root, {"pre_switch": [MIGRATE], "post_deploy": [["notify", "--all"]]},
                    {"post_deploy": [["notify", "--test"]], "post_deploy_timeout": 5})
    assert settings.hooks.pre_switch == (tuple(MIGRATE),)
    assert settings.hooks.post_deploy == (("notify", "--test"),)
    assert settings.hooks.post_deploy_timeout == 5.0


@pytest.mark.parametrize(("shared", "env", "line"), [
    ([], None, "config error: deploy.hooks: must be a mapping of hooks, got list []"),
    ({"pre_swich": []}, None, "config error: deploy.hooks.pre_swich: unknown hook (use one of: pre_switch, "
                              "post_deploy, post_deploy_timeout)"),
    ({"pre_switch": "python3 -m app migrate"}, None,
     "config error: deploy.hooks.pre_switch: must be a list of commands, got string 'python3 -m app migrate'"),
    ({"pre_switch": ["python3 -m app migrate"]}, None,
     "config error: deploy.hooks.pre_switch[0]: must be a list of strings (the program and its arguments), got "
     "string 'python3 -m app migrate'"),
    (None, {"post_deploy": [["notify"], []]}, "config error: deploy.environments.test.hooks.post_deploy[1]: names no "
                                               "program to run"),
    ({"post_deploy": [["notify", 3]]}, None, "config error: deploy.hooks.post_deploy[0]: must be a list of strings"),
    ({"post_deploy_timeout": "soon"}, None, "config error: deploy.hooks.post_deploy_timeout: 'soon' is not a number"),
    ({"post_deploy_timeout": 0}, None, "config error: deploy.hooks.post_deploy_timeout: 0 must be greater than 0"),
])
def test_a_bad_hook_is_one_line_naming_the_key(root, shared, env, line):
    with pytest.raises(ConfigError) as info:
        load(root, shared, env)
    message = str(info.value)
    assert message.startswith(line) and "\n" not in message and info.value.exit_code == 2


def test_a_password_in_a_mistyped_hook_is_not_shown(root):
    with pytest.raises(ConfigError) as info:
        load(root, {"pre_switch": ["migrate --password=hunter2hunter2"]})
    assert "hunter2" not in str(info.value)


# --- command lines ------------------------------------------------------------------------------------------------


def test_compose_run_is_non_interactive_unless_a_terminal_asks_for_one():
    compose = Compose("shop-test", "docker-compose.yml", variables={"APP_IMAGE": "shop:abc"})
    base = ["env", "APP_IMAGE=shop:abc", "docker", "compose", "--project-name", "shop-test", "--file",
            "docker-compose.yml", "run", "--rm", "--no-deps"]
    assert compose.run("app", ["sh", "-c", HOSTILE]) == [*base, "-T", "app", "sh", "-c", HOSTILE]
    assert compose.run("app", ["sh"], tty=True) == [*base, "app", "sh"]
    assert shlex.split(command_line(compose.run("app", [HOSTILE])))[-1] == HOSTILE, "one argument, quoted"


def test_the_stack_snapshot_leaves_one_off_containers_out():
    argv = docker.containers("shop-test", all_states=True)
    assert argv[argv.index("label=com.docker.compose.oneoff=False") - 1] == "--filter"


def test_a_post_deploy_command_gets_the_facts_in_its_environment_and_a_watchdog():
    argv = hooks_cmd.post_deploy("/venv/bin/python", 30.0, {"DEPLOY_RESULT": "ok", "DEPLOY_REASON": HOSTILE},
                                 ["notify", HOSTILE])
    assert argv == ["/venv/bin/python", "-I", "-m", "droplet_deploy.transaction.watchdog", "30", "env", f"DEPLOY_REASON={HOSTILE}",
                    "DEPLOY_RESULT=ok", "notify", HOSTILE]
    assert shlex.split(command_line(argv))[-1] == HOSTILE


def watchdog(seconds: float, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(hooks_cmd.bounded(sys.executable, seconds, command), capture_output=True, text=True,
                          timeout=60, cwd="/")


def test_the_watchdog_passes_the_exit_status_through():
    assert watchdog(10, "sh", "-c", "echo out; exit 7").returncode == 7
    missing = watchdog(10, "/nonexistent/notify")
    assert missing.returncode == 127 and "cannot run /nonexistent/notify" in missing.stderr


def test_the_watchdog_stops_a_hung_command_and_everything_it_started_within_its_time():
    # A shell whose child holds the output pipe: Invoke's own timeout would wait for the child to finish.
    started = time.monotonic()
    result = watchdog(1, "sh", "-c", "sleep 60 & sleep 60; wait")
    assert time.monotonic() - started < 15, "finishes within a bounded time"
    assert result.returncode == hooks_cmd.TIMED_OUT and "timed out after 1s" in result.stderr


# --- pre_switch ---------------------------------------------------------------------------------------------------


class HookEngine(FakeTarget):
    """Answers `compose run` with the exit status scripted for the command's program."""

    def __init__(self, engine, statuses):
        super().__init__(engine)
        self.statuses = statuses

    def _handler(self, argv):
        if "run" in argv and "--no-deps" in argv:
            program = argv[argv.index("app") + 1]
            status, out, err = self.statuses.get(program, (0, "", ""))
            return lambda a: (status, out, err)
        return super()._handler(argv)


def pre_switch_session(root, commands, statuses):
    engine = Engine()
    settings = load(root, {"pre_switch": commands}).replace(compose_command="docker compose")
    target = HookEngine(engine, statuses)
    out = io.StringIO()
    session = Session(settings, target, target, Reporter(out))  # type: ignore[arg-type]
    ComposeBackend(session)
    return session, target, out


def compose_runs(target):
    return [argv for argv in target.runs if "run" in argv and "--no-deps" in argv]


def test_pre_switch_runs_each_command_in_a_one_off_container_of_the_new_image(root):
    session, target, out = pre_switch_session(root, [MIGRATE, ["seed", HOSTILE]], {})
    hooks.pre_switch(session, "shop:" + REV[:12])
    runs = compose_runs(target)
    assert [argv[argv.index("app"):] for argv in runs] == [("app", *MIGRATE), ("app", "seed", HOSTILE)]
    assert all(f"APP_IMAGE=shop:{REV[:12]}" in argv and "-T" in argv and "--rm" in argv for argv in runs)
    assert "hooks.pre_switch[1]: python3 -m app migrate" in out.getvalue()


def test_the_first_failing_pre_switch_command_stops_the_release_naming_it_its_status_and_its_last_words(root):
    failing = ["sh", "-c", "migrate --password=hunter2hunter2"]
    session, target, _ = pre_switch_session(
        root, [MIGRATE, failing, ["never"]],
        {"sh": (3, "applying 0042\n", "Traceback ...\nOperationalError: no such table: users\n")})
    with pytest.raises(HookFailed) as info:
        hooks.pre_switch(session, "shop:abc")
    message = str(info.value)
    assert message.startswith("hooks.pre_switch[2] `sh -c 'migrate --password=***'` exited 3: "
                              "OperationalError: no such table: users (the release was abandoned before any traffic "
                              "moved")
    assert "hunter2" not in message and info.value.exit_status == 3
    assert len(compose_runs(target)) == 2, "the commands after the failing one did not run"


def test_one_pre_switch_command_is_named_without_a_number(root):
    session, _, _ = pre_switch_session(root, [MIGRATE], {"python3": (1, "it broke\n", "")})
    with pytest.raises(HookFailed, match=r"^hooks\.pre_switch `python3 -m app migrate` exited 1: it broke "):
        hooks.pre_switch(session, "shop:abc")


# --- post_deploy, from the transaction ---------------------------------------------------------------------------


@pytest.fixture
def local_session(root):
    def make(post_deploy, timeout=30, dry=False):
        settings = load(root, {"post_deploy": post_deploy, "post_deploy_timeout": timeout})
        context = Context(Config(overrides={"run": {"in_stream": False, "dry": dry}}))
        echoed = io.StringIO()  # the target's `[local] $ ...` and `[dry-run] ...` lines
        target = LocalTarget(context, str(root), out=echoed)
        out = io.StringIO()
        session = Session(settings, target, target, Reporter(out))
        session.echoed = echoed  # type: ignore[attr-defined]
        return session, out
    return make


def recorder(path: Path) -> list[str]:
    return ["sh", "-c", 'env | grep "^DEPLOY_" | sort > "$0"', str(path)]


def told(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_post_deploy_hears_of_an_ok_deploy_after_the_summary(local_session, tmp_path):
    facts = tmp_path / "facts"
    session, out = local_session([recorder(facts)])
    with Transaction(session, "deploy", REV, "shop:ccc") as txn, txn.recorded():
        txn.summary = "deployed"
    seen = told(facts)
    assert float(seen.pop("DEPLOY_DURATION")) >= 0
    assert seen == {"DEPLOY_ACTION": "deploy", "DEPLOY_RESULT": "ok", "DEPLOY_REVISION": REV, "DEPLOY_ENV": "test",
                    "DEPLOY_HOST": "local", "DEPLOY_REASON": ""}
    assert out.getvalue().startswith("deployed in "), "the summary comes first"
    assert "warning" not in out.getvalue()


def test_post_deploy_runs_once_the_lock_is_released(local_session, root):
    held = lock.lock_dir(str(root / ".deploy" / "test"))
    session, out = local_session([["sh", "-c", 'test ! -e "$0"', held]])
    with Transaction(session, "deploy", REV, "shop:ccc") as txn, txn.recorded():
        assert Path(held).is_dir(), "the lock is held during the deploy"
    assert "warning" not in out.getvalue(), out.getvalue()


def test_the_transaction_waits_for_deferred_work_before_it_releases_the_lock(local_session, root):
    held = lock.lock_dir(str(root / ".deploy" / "test"))
    session, out = local_session([])
    seen_lock = []
    release = threading.Event()

    def drain():
        release.wait(5)
        seen_lock.append(Path(held).is_dir())

    with Transaction(session, "deploy", REV, "shop:ccc") as txn, txn.recorded():
        session.defer(drain, "drain")
        txn.summary = "deployed"
        release.set()
    assert seen_lock == [True], "the deferred work finished while the lock was still held"
    assert out.getvalue().startswith("deployed in ")


def test_an_error_of_deferred_work_fails_the_command_after_it_settled(local_session, root):
    held = lock.lock_dir(str(root / ".deploy" / "test"))
    session, out = local_session([])

    def drain():
        raise CommandFailed(("docker", "rm", "--force", "abc"), 1, "no such container", where="local")

    with pytest.raises(CommandFailed, match="docker rm --force abc"):
        with Transaction(session, "deploy", REV, "shop:ccc") as txn, txn.recorded():
            session.defer(drain, "drain")
            txn.summary = "deployed"
    assert not Path(held).exists(), "the lock is released"
    assert "deployed in" not in out.getvalue(), "no success line for a command that failed"


def test_deferred_work_does_not_hide_the_error_the_block_raised(local_session):
    session, _ = local_session([])

    def drain():
        raise CommandFailed(("docker", "rm", "--force", "abc"), 1, "no such container", where="local")

    with pytest.raises(HookFailed):
        with Transaction(session, "deploy", REV, "shop:ccc") as txn, txn.recorded():
            session.defer(drain, "drain")
            raise HookFailed("hooks.pre_switch", MIGRATE, 3, "no such table")


def test_a_failed_deploy_keeps_its_error_and_the_hook_gets_the_reason(local_session, tmp_path):
    facts = tmp_path / "facts"
    session, _ = local_session([recorder(facts)])
    with pytest.raises(HookFailed) as info:
        with Transaction(session, "deploy", REV, "shop:ccc") as txn, txn.recorded():
            raise HookFailed("hooks.pre_switch", MIGRATE, 3, "no such table")
    assert info.value.exit_status == 3, "the deploy's own error, not the notification's"
    seen = told(facts)
    assert (seen["DEPLOY_RESULT"], seen["DEPLOY_REASON"]) == (
        "failed", "hooks.pre_switch `python3 -m app migrate` exited 3: no such table")


def test_an_interrupted_deploy_is_reported_as_interrupted(local_session, tmp_path):
    facts = tmp_path / "facts"
    session, _ = local_session([recorder(facts)])
    with pytest.raises(KeyboardInterrupt):
        with Transaction(session, "rollback", REV, "shop:ccc") as txn, txn.recorded():
            raise KeyboardInterrupt
    seen = told(facts)
    assert (seen["DEPLOY_ACTION"], seen["DEPLOY_RESULT"], seen["DEPLOY_REASON"]) == (
        "rollback", "interrupted", "interrupted by Ctrl-C")


def test_a_failing_notification_is_a_warning_and_the_next_one_still_runs(local_session, tmp_path):
    facts = tmp_path / "facts"
    session, out = local_session([["sh", "-c", "echo 'webhook said 404' >&2; exit 22"], ["/nonexistent/notify"],
                                  recorder(facts)])
    with Transaction(session, "deploy", REV, "shop:ccc") as txn, txn.recorded():
        txn.summary = "deployed"
    lines = out.getvalue().splitlines()
    assert "warning: hooks.post_deploy[1] `sh -c 'echo '\"'\"'webhook said 404'\"'\"' >&2; exit 22'` exited 22: " \
           "webhook said 404 (the deploy's result stands)" in lines
    [missing] = [line for line in lines if line.startswith("warning: hooks.post_deploy[2] ")]
    assert missing.startswith("warning: hooks.post_deploy[2] `/nonexistent/notify` exited 127: ")
    assert "No such file or directory" in missing
    assert told(facts)["DEPLOY_RESULT"] == "ok"


def test_a_hung_notification_is_stopped_at_its_timeout(local_session):
    session, out = local_session([["sh", "-c", "sleep 60 & sleep 60; wait"]], timeout=1)
    started = time.monotonic()
    with Transaction(session, "deploy", REV, "shop:ccc") as txn, txn.recorded():
        pass
    assert time.monotonic() - started < 20, "finishes within a bounded time"
    assert "did not finish within 1s and was stopped (the deploy's result stands)" in out.getvalue()


def test_other_changes_notify_nobody_and_a_dry_run_only_prints_the_notification(local_session, tmp_path):
    facts = tmp_path / "facts"
    session, _ = local_session([recorder(facts)])
    with Transaction(session, "restart", REV, "shop:ccc") as txn, txn.recorded():
        pass
    assert not facts.exists()
    dry, _ = local_session([recorder(facts)], dry=True)
    with Transaction(dry, "deploy", REV, "shop:ccc") as txn, txn.recorded():
        pass
    assert not facts.exists()
    planned = [line for line in dry.echoed.getvalue().splitlines() if "droplet_deploy.transaction.watchdog" in line]
    assert len(planned) == 1 and planned[0].startswith("[dry-run] [local] ") and "DEPLOY_RESULT=ok" in planned[0]


# --- deploy.exec --------------------------------------------------------------------------------------------------


class ExecTarget(FakeTarget):
    def __init__(self, engine, status):
        super().__init__(engine)
        self.status = status
        self.interactive: list[tuple[str, ...]] = []

    def run(self, argv, **options):
        if "run" in argv:
            self.runs.append(tuple(argv))
            return Result(tuple(argv), self.status, "", "")
        return super().run(argv, **options)

    def interact(self, argv):
        self.interactive.append(tuple(argv))
        return self.status


def exec_session(root, engine, status=0):
    settings = load(root).replace(compose_command="docker compose")
    target = ExecTarget(engine, status)
    session = Session(settings, target, target, Reporter(io.StringIO()))  # type: ignore[arg-type]
    ComposeBackend(session)
    return session, target


def test_exec_runs_in_the_serving_image_and_returns_the_exit_status(root):
    engine = Engine()
    engine.add("proxy", "nginx", None)
    old = engine.add("app", "shop:old", "a" * 40)
    engine.add("app", "shop:new", "b" * 40)
    engine.upstream = old.name  # the newer container was left by a failed deploy: the proxy still names the old
    session, target = exec_session(root, engine, status=7)
    try:
        assert one_off_ops.exec_command(session, ["sh", "-c", HOSTILE], interactive=False) == 7
        assert one_off_ops.exec_command(session, ["sh"], interactive=True) == 7
    finally:
        engine.close()
    [batch] = [argv for argv in target.runs if "run" in argv]
    assert "APP_IMAGE=shop:old" in batch and batch[-5:] == ("-T", "app", "sh", "-c", HOSTILE)
    [terminal] = target.interactive
    assert "APP_IMAGE=shop:old" in terminal and "-T" not in terminal and terminal[-2:] == ("app", "sh")


def test_exec_with_nothing_serving_is_one_line(root):
    session, _ = exec_session(root, Engine())
    with pytest.raises(NotDeployed, match="no app container serves shop-test on fake, so there is no image"):
        one_off_ops.exec_command(session, ["true"], interactive=False)


def test_the_command_flag_is_split_like_a_shell_line():
    assert command_flag("cmd", "sh -c 'exit 7'") == ["sh", "-c", "exit 7"]
    assert command_flag("cmd", f"echo {shlex.quote(HOSTILE)}") == ["echo", HOSTILE]
    with pytest.raises(UsageError, match="^--cmd is missing"):
        command_flag("cmd", None)
    with pytest.raises(UsageError, match="^--cmd \"sh -c 'exit 7\" cannot be split into words: No closing"):
        command_flag("cmd", "sh -c 'exit 7")


# --- the CI/CD notification ---------------------------------------------------------------------------------------


class Webhook:
    """A real HTTP server on loopback that records each POST and answers ``status``."""

    def __init__(self, status: int = 200):
        self.status, self.received = status, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.received.append((self.headers.get("Content-Type"), json.loads(self.rfile.read(length))))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/SECRETPATH"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def notify(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DEPLOY_", "GITHUB_"))}
    facts = {"DEPLOY_ACTION": "deploy", "DEPLOY_RESULT": "failed", "DEPLOY_REVISION": REV, "DEPLOY_ENV": "prod",
             "DEPLOY_HOST": "deploy@prod", "DEPLOY_DURATION": "41.7", "DEPLOY_REASON": "hooks.pre_switch exited 3"}
    # As a post_deploy hook runs it: the console script, found on PATH beside the interpreter.
    return subprocess.run([str(Path(sys.executable).parent / "droplet-deploy"), "notify"],
                          env={**base, **facts, **env}, capture_output=True, text=True, timeout=60)


def test_the_notification_script_sends_nothing_without_a_webhook():
    result = notify()
    assert result.returncode == 0 and "DEPLOY_WEBHOOK_URL is not set" in result.stdout


def test_the_notification_script_posts_the_result_as_json_and_never_prints_the_url():
    hook = Webhook()
    try:
        result = notify(DEPLOY_WEBHOOK_URL=hook.url, GITHUB_SERVER_URL="https://github.com",
                        GITHUB_REPOSITORY="acme/shop", GITHUB_RUN_ID="42")
    finally:
        hook.close()
    assert result.returncode == 0, result.stderr
    [(kind, body)] = hook.received
    assert kind == "application/json"
    assert body["text"] == (f"deploy of acme/shop {REV[:12]} to prod on deploy@prod FAILED after 41.7s: "
                            "hooks.pre_switch exited 3 (https://github.com/acme/shop/actions/runs/42)")
    assert (body["result"], body["revision"]) == ("failed", REV)
    assert "SECRETPATH" not in result.stdout + result.stderr


def test_a_webhook_that_refuses_fails_the_hook_without_showing_the_url():
    hook = Webhook(status=404)
    try:
        result = notify(DEPLOY_WEBHOOK_URL=hook.url)
    finally:
        hook.close()
    assert result.returncode == 1 and "HTTP 404" in result.stderr
    assert "SECRETPATH" not in result.stdout + result.stderr


def test_production_notifies_through_the_hook_with_the_url_from_the_environment():
    import yaml

    project = yaml.safe_load((REPO / "invoke.yaml").read_text())["deploy"]
    assert project["environments"]["prod"]["hooks"]["post_deploy"] == [["droplet-deploy", "notify"]]
