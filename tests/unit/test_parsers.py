"""Pure parsers and planners: one command's output in, a decision out."""

import json

import pytest

from droplet_deploy.core.errors import RollbackImpossible
from droplet_deploy.engines.compose.state import parse_ids, parse_inspect, parse_upstream
from droplet_deploy.steps import images, preflight, verify
from droplet_deploy.transaction import history, lock

REV = "c" * 40


def test_revision_check_passes_only_on_exact_label():
    assert verify.check_revision({"org.opencontainers.image.revision": REV}, REV).ok
    stale = verify.check_revision({"org.opencontainers.image.revision": "d" * 40}, REV)
    assert not stale.ok and "HEAD is cccccccccccc" in stale.detail
    assert not verify.check_revision(None, REV).ok


def test_bytecode_check_names_what_it_found():
    check = verify.check_bytecode(0, "/srv/app/__pycache__\n/srv/app/stale.pyc\n", "/srv/app")
    assert not check.ok and check.detail == "found /srv/app/__pycache__ and 1 more"
    assert verify.check_bytecode(0, "", "/srv/app").ok
    assert not verify.check_bytecode(1, "", "/srv/app").ok, "a missing app dir is not a pass"


def test_imports_check_needs_exit_zero_and_a_route_count():
    assert verify.check_imports(0, "app ok: 9 routes, revision abc").detail == "9 routes"
    assert not verify.check_imports(0, "app ok").ok
    assert not verify.check_imports(0, "app ok: 0 routes").ok
    failed = verify.check_imports(1, "Traceback...\nModuleNotFoundError: No module named 'app'")
    assert not failed.ok and "No module named" in failed.detail


def test_user_and_env_checks():
    assert verify.check_user(0, "10001\n").ok
    assert not verify.check_user(0, "0\n").ok
    assert not verify.check_user(125, "").ok
    assert verify.check_no_env(0, "").ok
    assert not verify.check_no_env(0, "/srv/.env\n").ok


def test_parse_upstream():
    assert parse_upstream("server shop-test-app-2:8000;\n") == "shop-test-app-2"
    assert parse_upstream("# nothing\n") is None


def test_parse_inspect_reads_revision_health_and_addresses():
    raw = [{
        "Id": "f" * 64, "Name": "/shop-test-app-2",
        "Config": {"Image": "shop:abc", "Labels": {"com.docker.compose.service": "app",
                                                   "com.docker.compose.container-number": "2",
                                                   "org.opencontainers.image.revision": REV}},
        "State": {"Status": "running", "StartedAt": "2026-11-23T12:00:00Z", "Health": {"Status": "healthy"}},
        "NetworkSettings": {"Networks": {"shop-test_default": {"IPAddress": "172.18.0.3"}}},
    }]
    (c,) = parse_inspect(json.dumps(raw))
    assert (c.name, c.service, c.number, c.revision, c.health, c.addresses, c.running) == (
        "shop-test-app-2", "app", 2, REV, "healthy", ("172.18.0.3",), True)
    assert parse_ids('{"ID": "abc"}\n\n{"ID": "def"}\n') == ["abc", "def"]


def test_prune_keeps_newest_and_anything_in_use():
    listing = "\n".join(json.dumps({"Tag": t, "ID": t, "CreatedAt": f"2026-11-2{n} 10:00:00 +0000 UTC"})
                        for n, t in enumerate(["a", "b", "c", "d", "e"]))
    found = images.parse_images(listing + '\n{"Tag": "<none>", "ID": "x", "CreatedAt": "z"}', "shop")
    assert [i.tag for i in found] == ["e", "d", "c", "b", "a"]
    doomed = images.choose_prunable(found, keep=2, in_use={"shop:a"})
    assert [i.ref for i in doomed] == ["shop:c", "shop:b"]


def test_lock_holder_round_trip_and_garbage():
    holder = lock.Holder("ann@laptop", 4242, REV, 1_700_000_000.0, "laptop")
    parsed = lock.parse_holder(json.dumps(holder.__dict__))
    assert parsed == holder
    assert "ann@laptop (pid 4242, revision cccccccccccc" in parsed.describe()
    assert lock.parse_holder("not json") is None
    assert lock.parse_holder('{"holder": "x"}') is None


def test_history_skips_a_torn_line():
    good = json.dumps({"revision": REV, "image": "shop:c", "env": "prod", "who": "ann", "started_at": 1.0,
                       "duration_s": 2.0, "result": "ok"})
    records = history.parse(good + '\n{"revision": "tor\n' + good + "\n")
    assert [r.result for r in records] == ["ok", "ok"]


def test_df_parser():
    out = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda 100 50 2097152 50% /\n"
    assert preflight.parse_df_free_mb(out) == 2048
    assert preflight.parse_df_free_mb("") is None


@pytest.mark.parametrize("line", [
    '{"revision": "tor',
    "[1, 2]",
    '"just a string"',
    '{"result": "ok"}',
    '{"revision": 5, "result": "ok"}',
    '{"revision": "' + REV + '", "result": null}',
    '{"revision": "", "result": "ok"}',
])
def test_history_counts_lines_without_a_revision_and_result_as_unreadable(line):
    good = json.dumps({"revision": REV, "image": "shop:c", "env": "prod", "who": "ann", "started_at": 1.0,
                       "duration_s": 2.0, "result": "ok"})
    found = history.read(f"{good}\n{line}\n\n{good}\n")
    assert [r.revision for r in found.records] == [REV, REV]
    assert found.unreadable == 1


@pytest.mark.parametrize("extra", [
    {},
    {"image": 7, "who": None, "env": ["prod"]},
    {"started_at": "yesterday", "duration_s": -1},
    {"started_at": float("nan"), "duration_s": float("inf")},
    {"started_at": 1e300, "skipped_backup": "yes", "action": 1},
])
def test_history_fills_missing_or_mistyped_fields_so_status_and_rollback_still_work(extra):
    from droplet_deploy.operations import status
    from droplet_deploy.pipeline import rollback

    line = json.dumps({"revision": REV, "result": "ok", **extra})
    found = history.read(line + "\n")
    assert found.unreadable == 0
    record = found.records[0]
    assert record.revision == REV and isinstance(record.image, str) and isinstance(record.who, str)
    assert isinstance(record.action, str) and isinstance(record.skipped_backup, bool)
    assert 0 <= record.started_at <= 1e11 and 0 <= record.duration_s <= 1e11
    lines = status.render(status.Status(
        env="prod", where="local", release_dir=None, containers=[], upstream=None, serving=None,
        health_url="http://127.0.0.1:8000/api/health", health=None, lock_present=False, holder=None,
        holder_gone=False, releases=found.records, now=2.0, unreadable=found.unreadable))
    assert any(REV[:12] in line for line in lines)
    if not record.image:
        with pytest.raises(RollbackImpossible):
            rollback.choose(found.records + [history.Record("d" * 40, "shop:d", "prod", "me", 3.0, 1.0, "ok")],
                            serving="d" * 40)


def test_status_says_how_many_history_lines_it_skipped():
    from droplet_deploy.operations import status

    lines = status.render(status.Status(
        env="prod", where="local", release_dir=None, containers=[], upstream=None, serving=None,
        health_url="http://127.0.0.1:8000/api/health", health=None, lock_present=False, holder=None,
        holder_gone=False, releases=[], now=2.0, unreadable=3))
    assert "    (3 unreadable history line(s) skipped: cut short or edited by hand)" in lines


def test_the_env_file_search_also_finds_the_configured_env_files_own_name(tmp_path, root):
    import dataclasses
    import subprocess

    from droplet_deploy.core.config import load
    from droplet_deploy.core.config_keys import DEFAULTS

    for rel in ("a/.env", "b/prod.vars", "c/.env.example", "d/.env.local", "e/notes.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    settings = dataclasses.replace(load({**DEFAULTS, "app_name": "shop"}, root=root), env_file="secrets/prod.vars")
    found = subprocess.run(["find", str(tmp_path), "(", *verify._env_file_names(settings), ")", "-not", "-name",
                            ".env.example", "-print"], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(found) == [str(tmp_path / "a/.env"), str(tmp_path / "b/prod.vars"), str(tmp_path / "d/.env.local")]
