"""Release naming, which releases to prune, which one serves, and the env-file verdict: pure functions."""

import dataclasses
from pathlib import Path

import pytest

from droplet_deploy.commands import files
from droplet_deploy.commands import release_dirs as cmd
from droplet_deploy.core import config, release_ids
from droplet_deploy.host import ship as release
from droplet_deploy.host.ship import Usage
from droplet_deploy.steps.revision import Revision

REPO = Path(__file__).resolve().parents[2]
SHA = "0123456789abcdef0123456789abcdef01234567"


def test_release_names_sort_by_time_and_carry_the_revision():
    first = release_ids.release_name(Revision(SHA).tag, 1_700_000_000)
    later = release_ids.release_name(Revision(SHA, dirty=True).tag, 1_700_000_061)
    assert first == "20231114T221320Z-0123456789ab"
    assert later == "20231114T221421Z-0123456789ab-dirty"
    assert sorted([later, first]) == [first, later]
    assert release_ids.RELEASE_RE.match(first) and release_ids.RELEASE_RE.match(later)


def test_listing_keeps_release_directories_only():
    listing = ("20240101T000000Z-aaaaaaaaaaaa\nnotes.txt\n.upload.tar.gz\n20230101T000000Z-bbbbbbbbbbbb-dirty\n"
               "current\n.incoming-20250101T000000Z-cccccccccccc\n")
    assert release_ids.parse_release_names(listing) == ["20230101T000000Z-bbbbbbbbbbbb-dirty",
                                                    "20240101T000000Z-aaaaaaaaaaaa"]


def test_only_temporary_release_names_are_leftovers():
    listing = (".incoming-20250101T000000Z-cccccccccccc\n20240101T000000Z-aaaaaaaaaaaa\n.incoming-notes\n"
               ".incoming-20250102T000000Z-dddddddddddd-dirty\n.upload.tar.gz\n")
    assert release_ids.parse_leftovers(listing) == [".incoming-20250101T000000Z-cccccccccccc",
                                                ".incoming-20250102T000000Z-dddddddddddd-dirty"]


NAMES = [f"2024010{i}T000000Z-{str(i) * 12}" for i in range(1, 7)]


def test_prune_keeps_the_newest_and_every_release_in_use():
    assert release_ids.to_prune(NAMES, 3, in_use=set()) == NAMES[:3]
    assert release_ids.to_prune(NAMES, 3, in_use={NAMES[0]}) == NAMES[1:3]
    assert release_ids.to_prune(NAMES, 10, in_use=set()) == []


def test_prune_never_removes_the_release_in_use_even_when_keeping_one():
    assert release_ids.to_prune(NAMES, 1, in_use={NAMES[2]}) == [n for n in NAMES[:-1] if n != NAMES[2]]
    assert release_ids.to_prune(NAMES, 0, in_use=set()) == NAMES[:-1], "the newest always stays"


BASE = "/srv/shop/releases"


def test_working_dirs_name_the_releases_in_use_and_the_one_serving():
    stdout = (f"{BASE}/{NAMES[4]}\trunning\tapp\n"
              f"{BASE}/{NAMES[1]}\trunning\tproxy\n"
              f"{BASE}/{NAMES[2]}\texited\tapp\n"
              "/home/someone/checkout\trunning\tapp\n"
              "\trunning\tapp\n"
              "garbage line\n")
    usages = release.parse_usage(stdout)
    assert Usage(f"{BASE}/{NAMES[4]}", "running", "app") in usages and len(usages) == 4
    assert release.releases_in_use(usages, BASE) == {NAMES[4], NAMES[1], NAMES[2]}
    assert release.serving_release(usages, BASE, "app") == NAMES[4]
    assert release.serving_release(usages, BASE + "/", "web") is None


@pytest.fixture
def settings():
    raw = {"app_name": "shop", "environments": {"prod": {"host": "prod", "compose_file": "docker-compose.beta.yml"}}}
    return config.load(raw, "prod", root=REPO)


def test_env_file_is_named_by_its_absolute_path_never_placed_in_a_release(settings, root):
    assert settings.env_file_path is None
    with_env = dataclasses.replace(settings, env_file=".env", remote_dir="/srv/shop")
    assert with_env.env_file_path == "/srv/shop/shared/.env"
    assert dataclasses.replace(settings, env_file=".env").env_file_path == "/srv/shop/shared/.env"
    absolute = dataclasses.replace(settings, env_file="/etc/shop/prod.env")
    assert absolute.env_file_path == "/etc/shop/prod.env"
    local = config.load({"app_name": "shop", "environments": {"test": {"env_file": "secrets/test.env"}}}, "test",
                        root=root)
    assert local.env_file_path == str(root / "secrets" / "test.env")


def test_compose_reads_the_env_file_by_the_path_it_is_given(settings, root):
    from droplet_deploy.engines.compose.stack import NO_ENV_FILE, compose_variables

    with_env = dataclasses.replace(settings, env_file=".env", remote_dir="/srv/a b")
    assert compose_variables(with_env, "shop:abc")["APP_ENV_FILE"] == "/srv/a b/shared/.env"
    assert compose_variables(settings)["APP_ENV_FILE"] == NO_ENV_FILE


def test_env_file_verdict_reads_only_the_mode():
    missing = release.judge_env_file("/srv/shop/shared/.env", False, "")
    assert not missing.ok and "missing on the host" in missing.detail and "chmod 600" in missing.detail
    loose = release.judge_env_file("/srv/shop/shared/.env", True, "644\n")
    assert not loose.ok and "mode 644" in loose.detail
    good = release.judge_env_file("/srv/shop/shared/.env", True, "600\n")
    assert good.ok and "values not shown" in good.detail


def test_release_commands_are_plain_argv_with_hostile_paths_kept_whole():
    hostile = "/srv/a b; rm -rf /"
    assert cmd.unpack(f"{hostile}/x.tgz", hostile) == ["tar", "-xzf", f"{hostile}/x.tgz", "-C", hostile]
    assert files.rename(f"{hostile}/.incoming-r", f"{hostile}/r") == ["mv", "-T", "--", f"{hostile}/.incoming-r",
                                                                     f"{hostile}/r"]
    assert files.free_kib_nearest(hostile)[-1] == hostile
    assert cmd.working_dirs("shop-prod")[:6] == ["docker", "ps", "--all", "--no-trunc", "--filter",
                                                 "label=com.docker.compose.project=shop-prod"]
