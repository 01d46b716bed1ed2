"""Pure parts of the day-two tasks: log filtering, flag parsing, status rendering."""

import re

import pytest

from droplet_deploy.commands.compose import Compose
from droplet_deploy.core.errors import UsageError
from droplet_deploy.engines.snapshot import Container
from droplet_deploy.operations import logs as logs_ops
from droplet_deploy.operations import services as services_ops
from droplet_deploy.operations import status
from droplet_deploy.steps.health import Verdict
from droplet_deploy.transaction import history, lock


def test_line_filter_matches_whole_lines_across_chunk_boundaries():
    out = []
    keep = logs_ops.LineFilter(re.compile("error", re.IGNORECASE), out.append)
    for chunk in ["app-1 | ok\napp-1 | ER", "ROR boom\napp-1 | fine\napp", "-1 | last error"]:
        keep(chunk)
    assert out == ["app-1 | ERROR boom\n"]
    keep.close()
    assert out == ["app-1 | ERROR boom\n", "app-1 | last error\n"]


def test_grep_is_a_case_insensitive_regex_and_a_bad_one_is_one_line():
    assert logs_ops.grep_pattern("level.*error").search('"level": "ERROR"')
    with pytest.raises(UsageError) as info:
        logs_ops.grep_pattern("(unclosed")
    assert "--grep '(unclosed' is not a regular expression" in str(info.value)


def test_services_are_checked_against_the_stack():
    assert services_ops.parse_services(None, ["app", "proxy"]) == []
    assert services_ops.parse_services("app, proxy", ["app", "proxy"]) == ["app", "proxy"]
    with pytest.raises(UsageError) as info:
        services_ops.parse_services("db", ["app", "proxy"])
    assert "use one of: app, proxy" in str(info.value)


def test_compose_logs_argv():
    c = Compose("shop-prod", "docker-compose.beta.yml")
    assert c.logs(["app"], since="10m", tail=50, follow=True) == [
        "docker", "compose", "--project-name", "shop-prod", "--file", "docker-compose.beta.yml", "logs",
        "--no-color", "--since", "10m", "--tail", "50", "--follow", "app"]
    assert c.logs()[-2:] == ["logs", "--no-color"]


@pytest.mark.parametrize("started, now, shown", [
    ("2025-01-01T00:00:00.123456789Z", 1735689612, "12s"),
    ("2025-01-01T00:00:00Z", 1735689600 + 185, "3m05s"),
    ("2025-01-01T00:00:00Z", 1735689600 + 7500, "2h05m"),
    ("2025-01-01T00:00:00Z", 1735689600 + 3 * 86400 + 3600, "3d01h"),
    ("0001-01-01T00:00:00Z", 1735689600, "-"),
    ("garbage", 1735689600, "?"),
])
def test_uptime(started, now, shown):
    assert status.uptime(started, now) == shown


def _container(name, service, state="running", revision="a" * 40, number=1):
    return Container(id=name + "-id" + "0" * 40, name=name, service=service, image="shop:" + (revision or "x")[:12],
                     revision=revision, state=state, health="healthy" if state == "running" else None,
                     started_at="2025-01-01T00:00:00Z", number=number, addresses=("10.0.0.2",))


def _status(**changes):
    app = _container("shop-prod-app-2", "app", number=2)
    base = dict(
        env="prod", where="root@prod", release_dir="/srv/shop/releases/20250101T000000Z-aaaaaaaaaaaa",
        containers=[app, _container("shop-prod-proxy-1", "proxy", revision=None)],
        upstream="shop-prod-app-2", serving=app, health_url="http://127.0.0.1:8000/api/health",
        health=Verdict(True, "healthy at revision aaaaaaaaaaaa", "a" * 40),
        lock_present=False, holder=None, holder_gone=False,
        releases=[history.Record("b" * 40, "shop:bbbbbbbbbbbb", "prod", "ann@laptop", 1735689000, 12.5, "ok"),
                  history.Record("a" * 40, "shop:aaaaaaaaaaaa", "prod", "bob@ci", 1735689500, 9.0, "failed",
                                 reason="build failed")],
        now=1735689600 + 125,
    )
    base.update(changes)
    return status.Status(**base)


def test_status_shows_revision_health_upstream_containers_and_releases_newest_first():
    lines = status.render(_status())
    text = "\n".join(lines)
    assert lines[0] == "prod on root@prod"
    assert "revision   aaaaaaaaaaaa  (shop:aaaaaaaaaaaa)" in text
    assert "health     OK: healthy at revision aaaaaaaaaaaa" in text
    assert "proxy      -> shop-prod-app-2" in text
    assert "lock       free" in text
    serving = next(line for line in lines if "shop-prod-app-2" in line and "<- serving" in line)
    assert "running (healthy)" in serving and "up 2m05s" in serving
    releases = [line for line in lines if "ann@laptop" in line or "bob@ci" in line]
    assert "bob@ci" in releases[0] and "build failed" in releases[0] and "ann@laptop" in releases[1]


def test_status_explains_a_stale_lock_with_the_command_that_clears_it():
    holder = lock.Holder("ann@laptop", 4242, "c" * 40, 1735689000, "laptop")
    text = "\n".join(status.render(_status(lock_present=True, holder=holder, holder_gone=True),
                                   "inv deploy.unlock --host prod"))
    assert "STALE: held by ann@laptop (pid 4242, revision cccccccccccc" in text
    assert "clear it: inv deploy.unlock --host prod" in text
    held = "\n".join(status.render(_status(lock_present=True, holder=holder)))
    assert "lock       held by ann@laptop (pid 4242" in held


def test_status_of_an_empty_environment():
    text = "\n".join(status.render(_status(containers=[], serving=None, upstream=None, health=None, releases=[])))
    assert "nothing running" in text and "no proxy running" in text and "releases   none recorded" in text


def test_status_as_json_holds_the_same_facts_masked_as_the_text():
    import json

    leaked = history.Record("c" * 40, "shop:cccccccccccc", "prod", "ci@runner", 1735689550, 3.0, "failed",
                            reason="pg_dump postgresql://app:hunter22@db/app failed")
    found = status.as_json(_status(releases=[*_status().releases, leaked]))
    json.dumps(found)  # plain data all the way down
    assert (found["env"], found["where"], found["revision"]) == ("prod", "root@prod", "a" * 40)
    assert found["health"]["ok"] is True and found["upstream"] == "shop-prod-app-2"
    assert [c["name"] for c in found["containers"] if c["serving"]] == ["shop-prod-app-2"]
    assert found["containers"][0]["uptime"] == "2m05s"
    assert [r["who"] for r in found["releases"]] == ["ci@runner", "bob@ci", "ann@laptop"], "newest first"
    assert "hunter22" not in json.dumps(found), "a credential in a history line stays masked"
    assert found["lock"] == {"held": False, "stale": False, "note": "", "holder": None}
