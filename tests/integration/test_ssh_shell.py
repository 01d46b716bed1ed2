"""Commands over SSH share one shell on the task's connection (droplet_deploy/transport/target.py, ``_Shell``): each command's
output, errors and exit status come back whole and apart, a command cannot read or change what follows it, one
that overruns its timeout is stopped without taking the next ones down, and a whole series costs one session.
A real sshd on loopback (tests/support/sshd.py); no Docker needed."""

from __future__ import annotations

import io
import threading

import fabric
import pytest

from droplet_deploy.core.errors import CommandFailed
from droplet_deploy.transport.target import SshTarget

pytestmark = pytest.mark.integration

HOSTILE = "nginx; rm -rf / #$(touch /tmp/pwned) 'quoted' \"double\" `tick`"


@pytest.fixture
def target(sshd, tmp_path):
    connection = fabric.Connection(sshd.alias, config=sshd.fabric_config(), connect_kwargs=sshd.connect_kwargs())
    found = SshTarget(connection, str(tmp_path), echo=False)
    yield found
    found.close()


def sessions(sshd) -> int:
    return sshd.log.read_text(errors="replace").count("Starting session: command")


def test_output_errors_and_status_come_back_whole_and_apart(target):
    done = target.probe(["sh", "-c", "printf 'no newline'; printf 'to stderr' >&2; exit 3"])
    assert (done.exit_status, done.stdout, done.stderr) == (3, "no newline", "to stderr")
    lines = target.probe(["sh", "-c", "echo one; echo; echo two; echo err >&2"])
    assert (lines.stdout, lines.stderr) == ("one\n\ntwo\n", "err\n")
    assert target.probe(["echo", HOSTILE]).stdout == HOSTILE + "\n"


def test_large_output_on_both_streams_is_carried_without_a_stall(target):
    big = target.probe(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x; head -c 3000000 /dev/zero | tr '\\0' y >&2"])
    assert big.ok and big.stdout == "x" * 3_000_000 and big.stderr == "y" * 3_000_000


def test_a_command_runs_in_the_target_directory_and_cannot_read_or_move_the_next_ones(target, tmp_path):
    assert target.probe(["pwd"]).stdout.strip() == str(tmp_path)
    assert target.probe(["sh", "-c", "cat; echo read-nothing"]).stdout == "read-nothing\n"
    target.probe(["sh", "-c", "cd /; exit 0"])
    assert target.probe(["pwd"]).stdout.strip() == str(tmp_path)


def test_a_failed_check_raises_with_its_stderr(target):
    with pytest.raises(CommandFailed) as info:
        target.run(["sh", "-c", "echo 'the reason' >&2; exit 4"])
    assert info.value.exit_status == 4 and "the reason" in str(info.value)


def test_a_command_past_its_timeout_is_stopped_and_the_next_one_runs(target):
    slow = target.probe(["sh", "-c", "sleep 30"], timeout=0.5)
    assert slow.exit_status == -1 and "no answer within 0.5s" in slow.stderr
    assert target.probe(["echo", "next"]).stdout == "next\n"


def test_many_commands_and_threads_share_one_session(target, sshd):
    target.probe(["true"])
    opened = sessions(sshd)
    results = []

    def probe_some() -> None:
        results.extend(target.probe(["echo", str(n)]).stdout for n in range(10))

    threads = [threading.Thread(target=probe_some) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == sorted([f"{n}\n" for n in range(10)] * 3)
    assert sessions(sshd) == opened, "no command opened a session of its own"


def test_a_command_does_not_wait_behind_a_long_one_it_takes_a_session_of_its_own(target, sshd):
    # The lock's heartbeat must beat while a drain of many seconds holds the shell.
    target.probe(["true"])
    opened = sessions(sshd)
    release = target.cwd + "/release"
    long_one = threading.Thread(target=target.probe, args=(["sh", "-c", f"until [ -e {release} ]; do sleep 0.05; done"],))
    long_one.start()
    try:
        assert target.probe(["echo", "beat"]).stdout == "beat\n"
        assert long_one.is_alive(), "answered while the long command still held the shell"
    finally:
        target.probe(["touch", release])
        long_one.join()
    assert sessions(sshd) >= opened + 1


def test_a_streamed_command_is_shown_as_it_runs_with_credentials_masked(target, sshd, capsys):
    target.probe(["true"])
    opened = sessions(sshd)
    done = target.run(["sh", "-c", 'echo "step 1/2 $1"; echo "warning: $1" >&2; printf "done"', "sh",
                       "postgresql://app:S3CRET-VALUE@db/app"], watched=True)
    shown = capsys.readouterr()
    assert shown.out == "step 1/2 postgresql://app:***@db/app\ndone"
    assert shown.err == "warning: postgresql://app:***@db/app\n"
    assert done.stdout.startswith("step 1/2 postgresql://app:S3CRET-VALUE@db/app"), "the result keeps what ran"
    assert sessions(sshd) == opened, "a build runs in the same shell"


def test_a_quiet_build_that_fails_in_the_shell_shows_its_last_lines_masked(capsys, sshd, tmp_path):
    report = io.StringIO()
    connection = fabric.Connection(sshd.alias, config=sshd.fabric_config(), connect_kwargs=sshd.connect_kwargs())
    target = SshTarget(connection, str(tmp_path), echo=False, out=report)
    try:
        target.probe(["true"])
        opened = sessions(sshd)
        with pytest.raises(CommandFailed):
            target.run(["sh", "-c", 'echo "step 1/2"; echo "broken: $1" >&2; exit 3', "sh",
                        "postgresql://app:S3CRET-VALUE@db/app"], stream=True)
        assert sessions(sshd) == opened, "it ran in the shared shell"
    finally:
        target.close()
    assert capsys.readouterr().out == "", "quiet: the output is not shown as it runs"
    shown = report.getvalue()
    assert "(failed, exit 3)" in shown
    assert "    | step 1/2\n" in shown and "    | broken: postgresql://app:***@db/app\n" in shown
    assert "S3CRET-VALUE" not in shown
