"""preflight.run: the checks of a stage run at once, are reported in the order given, and a failed stage ends it."""

from __future__ import annotations

import threading

import pytest

from droplet_deploy.core.errors import PreflightFailed
from droplet_deploy.steps import preflight
from droplet_deploy.steps.preflight import Item


def passing(name: str):
    return lambda: Item(name, True, "ok")


def test_the_checks_of_a_stage_run_at_the_same_time():
    # Each check waits for all the others of its stage: run one after the other, the first would time out.
    together = threading.Barrier(3, timeout=10)

    def meets(name: str):
        def check() -> Item:
            together.wait()
            return Item(name, True, "met the others")
        return check

    reported = []
    preflight.run([[meets("a"), meets("b"), meets("c")]], reported.append)
    assert [i.name for i in reported] == ["a", "b", "c"]


def test_items_are_reported_in_the_order_given_not_the_order_they_finish():
    second_done = threading.Event()

    def slow_first() -> Item:
        second_done.wait(timeout=10)  # finishes after the second one
        return Item("first", True, "ok")

    def second() -> Item:
        second_done.set()
        return Item("second", True, "ok")

    reported = []
    preflight.run([[slow_first, second, preflight.in_order(passing("third"), passing("fourth"))]], reported.append)
    assert [i.name for i in reported] == ["first", "second", "third", "fourth"]


def test_checks_in_order_run_one_after_the_other():
    seen = []

    def writes() -> Item:
        seen.append("written")
        return Item("writes", True, "ok")

    def reads() -> Item:
        return Item("reads", seen == ["written"], "saw the write")

    preflight.run([[preflight.in_order(writes, reads)]], lambda item: None)


def test_a_failed_stage_ends_the_run_and_the_first_failure_is_the_error():
    reported = []

    def later() -> Item:
        return Item("compose file", True, "ok")

    with pytest.raises(PreflightFailed) as info:
        preflight.run([[lambda: Item("docker engine", False, "`docker version` failed"), passing("docker compose")],
                       [later]], reported.append)
    assert str(info.value).startswith("preflight: docker engine: `docker version` failed")
    assert [i.name for i in reported] == ["docker engine", "docker compose"], "nothing of the later stage is said"


def test_the_stages_run_at_once_and_are_reported_in_order():
    import threading

    first_started = threading.Event()
    later_started = threading.Event()

    def first() -> Item:
        first_started.set()
        # Passes only when the later stage's check is running meanwhile: stage by stage, it would wait here.
        return Item("docker engine", later_started.wait(5), "server 28")

    def later() -> Item:
        later_started.set()
        return Item("compose file", first_started.wait(5), "valid")

    reported = []
    preflight.run([[first], [later]], reported.append)
    assert [(i.name, i.ok) for i in reported] == [("docker engine", True), ("compose file", True)]
