"""Choosing the release to roll back to: history lines and the serving revision in, one release out."""

import pytest

from droplet_deploy.core.errors import RollbackImpossible, UsageError
from droplet_deploy.pipeline.rollback import choose, kept_listing
from droplet_deploy.steps.images import Image
from droplet_deploy.transaction.history import Record

A, B, C, D = ("a" * 40, "b" * 40, "c" * 40, "d" * 40)


def rec(revision: str, result: str = "ok", action: str = "deploy", at: float = 0.0) -> Record:
    return Record(revision, f"shop:{revision[:12]}", "prod", "me@here", at, 1.0, result, action=action)


def test_previous_is_the_last_good_release_before_the_serving_one():
    history = [rec(A, at=1), rec(B, at=2), rec(C, "failed", at=3), rec(D, "interrupted", at=4)]
    assert choose(history, serving=B).revision == A


def test_failed_and_interrupted_releases_are_never_chosen():
    history = [rec(A, at=1), rec(C, "failed", at=2), rec(B, at=3)]
    assert choose(history, serving=B).revision == A


def test_rolling_back_twice_returns_to_where_you_started():
    history = [rec(A, at=1), rec(B, at=2), rec(A, action="rollback", at=3)]
    assert choose(history, serving=A).revision == B


def test_a_serving_revision_missing_from_history_goes_to_the_latest_other_release():
    history = [rec(A, at=1), rec(B, at=2)]
    assert choose(history, serving=C).revision == B


def test_nothing_earlier_is_one_clear_error():
    with pytest.raises(RollbackImpossible, match=f"no successful release before {A[:12]}"):
        choose([rec(A)], serving=A)
    with pytest.raises(RollbackImpossible, match="no app container is running.*name one with --to REV"):
        choose([rec(A)], serving=None)


def test_to_matches_a_prefix_of_a_successful_release():
    history = [rec(A, at=1), rec(B, at=2), rec(C, "failed", at=3)]
    assert choose(history, serving=B, to="aaaa").revision == A
    with pytest.raises(RollbackImpossible, match="no successful release of 'cccc'"):
        choose(history, serving=B, to="cccc")
    with pytest.raises(UsageError, match=f"revision {B[:12]} is already serving"):
        choose(history, serving=B, to="bb")


def test_to_refuses_an_ambiguous_prefix():
    one, two = "ab" + "1" * 38, "ab" + "2" * 38
    with pytest.raises(UsageError, match="matches 2 releases"):
        choose([rec(one), rec(two)], serving=A, to="ab")


def test_errors_list_the_releases_newest_first_with_the_serving_one_marked():
    history = [rec(A, at=1), rec(B, at=2)]
    with pytest.raises(RollbackImpossible) as caught:
        choose(history, serving=B, to="ffff")
    assert f"releases: {B[:12]} (serving), {A[:12]}" in str(caught.value)


def test_kept_listing_marks_the_serving_tag_dirty_or_not():
    kept = [Image("shop:bbbbbbbbbbbb-dirty", "bbbbbbbbbbbb-dirty", "1", "2"),
            Image("shop:bbbbbbbbbbbb", "bbbbbbbbbbbb", "2", "1")]
    assert kept_listing(kept, B) == "bbbbbbbbbbbb-dirty, bbbbbbbbbbbb (serving)"
    assert kept_listing(kept, B + "-dirty") == "bbbbbbbbbbbb-dirty (serving), bbbbbbbbbbbb"
    assert kept_listing([], B) == "none"


def test_upstream_reset_runs_in_a_one_off_proxy_container_with_values_as_parameters(tmp_path):
    import subprocess

    from droplet_deploy.commands.compose import Compose
    from droplet_deploy.commands.proxy import RESET_UPSTREAM as _RESET_SCRIPT
    from droplet_deploy.commands.proxy import reset_script

    argv = Compose("shop-test", "compose.yml").run("proxy", reset_script("/x", "app", 8000))
    assert argv[:7] == ["docker", "compose", "--project-name", "shop-test", "--file", "compose.yml", "run"]
    assert argv[7:11] == ["--rm", "--no-deps", "-T", "proxy"]

    # The script itself, run by a real shell: a hostile service name is written as data, never executed.
    upstream = tmp_path / "upstream" / "app.conf"
    subprocess.run(["sh", "-c", _RESET_SCRIPT, "reset", str(upstream), "app; touch pwned", "8000"], check=True,
                   cwd=tmp_path)
    assert upstream.read_text() == "server app; touch pwned:8000;\n"
    assert not (tmp_path / "pwned").exists()
