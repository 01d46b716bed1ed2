"""A command that runs out of time, and any error the toolkit did not raise itself: one masked line, never a
traceback, and the history's record masked too."""

import io
import json

import pytest
from invoke import Config, Context, Exit
from invoke.exceptions import CommandTimedOut
from invoke.runners import Result as InvokeResult

from droplet_deploy.core.errors import CommandFailed
from droplet_deploy.tasks.flags import clean_errors
from droplet_deploy.transaction import history
from droplet_deploy.transport.target import LocalTarget

MARKER = "MARKERSECRET123"
SLOW = ["sh", "-c", 'echo "dumping with $1" >&2; sleep 30', "sh", f"postgresql://app:{MARKER}@db/app"]


def _target(tmp_path):
    return LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(tmp_path), echo=False,
                       out=io.StringIO())


def test_a_command_out_of_time_is_stopped_and_fails_in_one_masked_line(tmp_path):
    with pytest.raises(CommandFailed) as info:
        _target(tmp_path).run(SLOW, timeout=0.5)
    line = str(info.value)
    assert "\n" not in line and MARKER not in line and MARKER not in info.value.stderr
    assert line.startswith("[local] `sh -c ") and line.endswith("no answer within 0.5s; the command was stopped")
    assert "postgresql://app:***@db/app" in info.value.stderr, "what it printed before is kept, masked"


def test_a_probe_out_of_time_is_a_failed_result(tmp_path):
    result = _target(tmp_path).probe(["sleep", "30"], timeout=0.3)
    assert not result.ok and result.exit_status == -1 and "no answer within 0.3s" in result.stderr


def test_the_history_of_a_change_that_ran_out_of_time_is_masked(tmp_path):
    target = _target(tmp_path)
    with pytest.raises(CommandFailed), history.recorded(target, str(tmp_path), revision="r" * 40, image="i",
                                                        env="test", who="me"):
        target.run(SLOW, timeout=0.5)
    record = json.loads((tmp_path / "history.jsonl").read_text())
    assert MARKER not in json.dumps(record) and record["result"] == "failed"
    assert "no answer within 0.5s" in record["reason"]


def test_invokes_own_timeout_reaches_the_user_as_one_masked_line():
    command = f"cd /srv/app && sh -c 'mysqldump -uroot -p{MARKER} app'"
    failure = CommandTimedOut(InvokeResult(command=command, stdout="", stderr=f"using {MARKER}", exited=-1),
                              timeout=5)
    assert MARKER in str(failure), "Invoke's own message quotes the raw command"

    @clean_errors
    def task():
        raise failure

    with pytest.raises(Exit) as info:
        task()
    message = info.value.message
    assert "\n" not in message and MARKER not in message and info.value.code == 1
    assert message.startswith("error: `cd /srv/app && sh -c 'mysqldump -uroot -p*** app'` did not finish within 5s")


@pytest.mark.parametrize("error", [
    OSError(f"Socket is closed while sending Authorization: Bearer {MARKER}"),
    EOFError(),
    RuntimeError(f"boom at postgresql://app:{MARKER}@db/app\n  File 'x.py', line 3\n{MARKER}"),
])
def test_any_other_failure_is_one_masked_line(error, monkeypatch):
    monkeypatch.delenv("DEPLOY_DEBUG", raising=False)

    @clean_errors
    def task():
        raise error

    with pytest.raises(Exit) as info:
        task()
    assert "\n" not in info.value.message and MARKER not in info.value.message and info.value.code == 1
    assert info.value.message.startswith(f"error: {type(error).__name__}: ")


def test_an_exit_a_task_raises_passes_unchanged():
    @clean_errors
    def task():
        raise Exit("deploy.exec: the command exited 3", code=3)

    with pytest.raises(Exit) as info:
        task()
    assert info.value.code == 3 and info.value.message == "deploy.exec: the command exited 3"
