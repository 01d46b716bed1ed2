"""Every command has a bound, by kind, when its caller gives none; an error found beside the deploy (a lost link)
reaches the main thread at once, also out of a blocking wait, and waits for a shielded clean-up to end."""

from __future__ import annotations

import io
import threading
import time

import pytest
from invoke import Config, Context

from droplet_deploy.core import config, config_keys, signals
from droplet_deploy.core.errors import CommandFailed, ConfigError
from droplet_deploy.transport.target import Bounds, LocalTarget


def local(tmp_path, bounds: Bounds) -> LocalTarget:
    target = LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(tmp_path), echo=False,
                         out=io.StringIO())
    target.bounds = bounds
    return target


@pytest.mark.parametrize(("kind", "bounds"), [
    ({}, Bounds(command=0.5, build=60, watched=60)),
    ({"stream": True}, Bounds(command=60, build=0.5, watched=60)),
    ({"watched": True}, Bounds(command=60, build=60, watched=0.5)),
])
def test_a_command_without_a_timeout_gets_the_bound_of_its_kind(tmp_path, kind, bounds):
    target = local(tmp_path, bounds)
    started = time.monotonic()
    with pytest.raises(CommandFailed, match=r"no answer within 0\.5s; the command was stopped"):
        target.run(["sleep", "30"], **kind)
    assert time.monotonic() - started < 5


def test_a_probe_gets_the_plain_bound_and_an_explicit_timeout_wins(tmp_path):
    target = local(tmp_path, Bounds(command=0.5, build=60, watched=60))
    assert target.probe(["sleep", "30"]).exit_status == -1
    assert target.probe(["sleep", "0.8"], timeout=5).ok


def test_the_bounds_come_from_the_settings_with_their_defaults(root):
    settings = config.load({**config_keys.DEFAULTS, "app_name": "shop"}, "test", root=root)
    assert (settings.command_timeout, settings.build_timeout, settings.pre_switch_timeout) == (900, 3600, 3600)
    assert settings.link_timeout == 15


@pytest.mark.parametrize("key", ["command_timeout", "build_timeout", "pre_switch_timeout", "link_timeout"])
def test_a_bound_out_of_range_is_one_line_naming_the_key(key, root):
    with pytest.raises(ConfigError, match=rf"deploy\.{key}: .*seconds"):
        config.load({**config_keys.DEFAULTS, "app_name": "shop", key: 0}, "test", root=root)


class Lost(Exception):
    pass


def test_an_error_handed_to_the_main_thread_ends_a_blocking_wait_at_once():
    with signals.handled():
        threading.Timer(0.2, signals.raise_in_main, args=(Lost("gone"),)).start()
        started = time.monotonic()
        with pytest.raises(Lost):
            time.sleep(30)
    assert time.monotonic() - started < 2


def test_an_error_handed_over_during_a_shielded_clean_up_is_raised_when_it_ends():
    finished = []
    with signals.handled(), pytest.raises(Lost):
        with signals.shielded():
            threading.Timer(0.1, signals.raise_in_main, args=(Lost("gone"),)).start()
            time.sleep(0.5)
            finished.append(True)
    assert finished == [True]
