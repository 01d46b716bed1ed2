"""SIGTERM and SIGHUP handled like Ctrl-C, real signals sent to this very process: the interrupt reaches the code
even while Invoke waits for a command, a clean-up under a shield runs to its end, and the history names the signal."""

from __future__ import annotations

import io
import json
import os
import signal
import threading
import time

import pytest
from invoke import Config, Context

from droplet_deploy.core import signals
from droplet_deploy.transaction import history
from droplet_deploy.transport.target import LocalTarget


def local(path) -> LocalTarget:
    return LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(path), out=io.StringIO())


def soon(signum: int, after: float = 0.3) -> threading.Timer:
    timer = threading.Timer(after, os.kill, (os.getpid(), signum))
    timer.start()
    return timer


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_each_signal_becomes_an_interrupt_with_its_exit_code(signum, code):
    with pytest.raises(KeyboardInterrupt) as info, signals.handled():
        os.kill(os.getpid(), signum)
    assert signals.exit_code(info.value) == code
    assert signals.describe(info.value) == ("Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name)


def test_the_previous_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with signals.handled():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_interrupt_during_a_local_command_stops_the_command_and_reaches_the_caller(tmp_path):
    # Invoke catches KeyboardInterrupt while it waits and only writes ^C to the command's stdin: the command
    # must get the signal itself, and the interrupt must still reach the code that ran it.
    target = local(tmp_path)
    started = time.monotonic()
    with pytest.raises(signals.Interrupted) as info, signals.handled():
        soon(signal.SIGTERM)
        target.run(["sleep", "60"])
    assert info.value.signum == signal.SIGTERM
    assert time.monotonic() - started < 30, "the command was stopped, not waited for"


def test_a_shielded_clean_up_runs_to_its_end_then_the_signal_is_raised(tmp_path):
    target = local(tmp_path)
    done = []
    with pytest.raises(signals.Interrupted), signals.handled():
        with signals.shielded():
            soon(signal.SIGTERM, 0.1)
            target.run(["sleep", "0.6"])
            done.append("first")
            target.run(["true"])
            done.append("second")
    assert done == ["first", "second"]


def test_a_signal_during_a_clean_up_that_fails_leaves_the_failure_in_charge():
    with pytest.raises(RuntimeError), signals.handled(), signals.shielded():
        os.kill(os.getpid(), signal.SIGHUP)
        raise RuntimeError("clean-up failed")


def test_history_records_which_signal_interrupted_the_deploy(tmp_path):
    target = local(tmp_path)
    with pytest.raises(signals.Interrupted), signals.handled():
        with history.recorded(target, str(tmp_path), revision="r" * 40, image="shop:r", env="test", who="me"):
            os.kill(os.getpid(), signal.SIGTERM)
    [line] = (tmp_path / "history.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert (entry["result"], entry["reason"]) == ("interrupted", "interrupted by SIGTERM")
