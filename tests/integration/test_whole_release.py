"""A release is its image, its compose file, its override and its env file: a rollback brings all of them back,
locally and over SSH, and ``--with-data`` the data too. And what a person sees of a deploy: its steps, checks,
waits and summary; the commands and the build log with ``--verbose``; the failing command and its tail always.

Real Docker, real sshd (tests/integration/test_remote.py's ``prod``), the `inv` command as users run it.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from tests.integration.test_backup import add_quotes, quotes
from tests.integration.test_remote import configure_prod

pytestmark = pytest.mark.integration

SECRET_A = "secret-of-release-a-" + "a" * 24
SECRET_B = "secret-of-release-b-" + "b" * 24


def set_greeting(path, value: str) -> None:
    """A variable of the app service's `environment:` block in the compose file: what a release changes."""
    text = path.read_text()
    marker = "    environment:\n"
    if marker not in text:  # production's compose file has none yet: the app service's first `restart:` line
        text = text.replace("    restart: unless-stopped\n", marker + "    restart: unless-stopped\n", 1)
    lines = [line for line in text.splitlines(keepends=True) if not line.startswith("      GREETING:")]
    text = "".join(lines)
    path.write_text(text.replace(marker, f"{marker}      GREETING: {value}\n", 1))


def serving_env(compose_project: str) -> dict[str, str]:
    """`docker exec <serving> env` of the one app container running."""
    (container,) = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={compose_project}",
         "--filter", "label=com.docker.compose.service=app"], capture_output=True, text=True, check=True).stdout.split()
    out = subprocess.run(["docker", "exec", container, "env"], capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def history(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def echo_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("[local] $ ")]


def test_rollback_brings_back_the_compose_file_the_env_file_and_with_data_the_data(project):
    compose = project.path / "docker-compose.test.yml"
    state = project.path / ".deploy" / "test"
    # One image and one release kept: retention must still spare what a rollback to A needs.
    project.configure(keep_images=1, keep_releases=1,
                      environments={"test": {"env_file": ".env", "backup_before_deploy": True}})
    project.write(".env", f"APP_SECRET_KEY={SECRET_A}\n")  # git ignores it
    set_greeting(compose, "hello from A")
    a = project.commit("A")

    deployed = project.inv("deploy.test")
    printed = deployed.stdout + deployed.stderr
    assert echo_lines(printed) == [], "no command echo by default"
    assert "Step 1/" not in printed and "Successfully built" not in printed, "no build log by default"
    for step in ("==> preflight", "==> build", "==> verify.build", "==> rollout", "PASS  docker engine",
                 f"deployed {a[:12]} to test on local"):
        assert step in deployed.stdout
    [kept_a] = history(state / "history.jsonl")
    kept_dir = state / "releases" / kept_a["release"]
    assert sorted(p.name for p in kept_dir.iterdir()) == ["compose.yml", "env"], "fit compose file: no override"
    assert (kept_dir / "compose.yml").read_text() == compose.read_text()
    assert stat.S_IMODE(os.stat(kept_dir / "env").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(kept_dir).st_mode) == 0o700
    add_quotes(project, "written under A")

    # A build that fails shows its command and the tail of its log, without --verbose.
    dockerfile = project.path / "Dockerfile"
    good_dockerfile = dockerfile.read_text()
    dockerfile.write_text(good_dockerfile + "\nRUN echo the-step-that-breaks && exit 3\n")
    project.commit("broken build")
    broken = project.inv("deploy.test", check=False)
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    [failed] = [line for line in broken.stderr.splitlines() if line.startswith("[local] $ docker build")]
    assert failed.endswith("(failed, exit 3)") or "(failed, exit" in failed
    assert "    | the-step-that-breaks" in broken.stderr, broken.stderr
    assert [line for line in broken.stderr.splitlines() if line.startswith("error: ")], broken.stderr
    dockerfile.write_text(good_dockerfile)

    project.write(".env", f"APP_SECRET_KEY={SECRET_B}\n")
    set_greeting(compose, "hello from B")
    b = project.commit("B")
    verbose = project.inv("deploy.test", "--verbose")
    assert any(line.startswith("[local] $ docker build") for line in echo_lines(verbose.stderr))
    assert "the-step-that-breaks" not in verbose.stdout + verbose.stderr
    assert "Step 1/" in verbose.stdout + verbose.stderr or "#1 " in verbose.stdout + verbose.stderr, "the build log"
    env = serving_env(project.compose_project())
    assert (env["GREETING"], env["APP_SECRET_KEY"]) == ("hello from B", SECRET_B)
    add_quotes(project, "written under B")
    assert quotes(project) == ["written under A", "written under B"]
    deploy_b = history(state / "history.jsonl")[-1]
    assert deploy_b["backup"], "B's deploy backed up A's data first"
    images = subprocess.run(["docker", "image", "ls", project.name, "--format", "{{.Tag}}"], capture_output=True,
                            text=True, check=True).stdout.split()
    assert sorted(images) == sorted([a[:12], b[:12]]), "keep_images 1, and A's image: a rollback needs it"
    assert kept_a["release"] in os.listdir(state / "releases"), "keep_releases 1, and A's files: a rollback needs them"

    back = project.inv("deploy.rollback", "--with-data")
    assert f"rolled back to {a[:12]} with the data of backup {deploy_b['backup']} on test" in back.stdout
    assert echo_lines(back.stdout + back.stderr) == []
    assert project.health()["revision"] == a
    env = serving_env(project.compose_project())
    assert (env["GREETING"], env["APP_SECRET_KEY"]) == ("hello from A", SECRET_A), "A's compose file and env file"
    assert quotes(project) == ["written under A"], "the data as it was before B"
    rollback_line, restore_line = history(state / "history.jsonl")[-2:]
    assert (rollback_line["action"], rollback_line["result"], rollback_line["release"]) == \
        ("rollback", "ok", kept_a["release"])
    assert (restore_line["action"], restore_line["backup"], restore_line["result"]) == \
        ("restore", deploy_b["backup"], "ok")
    assert rollback_line["backup"], "B's data was backed up before it was replaced"
    printed = "".join(r.stdout + r.stderr for r in (deployed, broken, verbose, back))
    assert SECRET_A not in printed and SECRET_B not in printed

    # Rolling back again with the data returns to B as it was left: the backup taken before the rollback.
    project.inv("deploy.rollback", "--with-data")
    assert project.health()["revision"] == b
    assert serving_env(project.compose_project())["GREETING"] == "hello from B"
    assert quotes(project) == ["written under A", "written under B"]


def test_a_rollback_with_data_without_a_backup_says_so_and_changes_nothing(project):
    project.inv("deploy.test")
    (project.path / "app" / "routes.py").write_text((project.path / "app" / "routes.py").read_text() + "\nX = 1\n")
    second = project.commit("second")
    project.inv("deploy.test")  # the test stack backs up before a deploy only when asked: no backup here
    refused = project.inv("deploy.rollback", "--with-data", check=False)
    assert refused.returncode == 1
    [line] = [line for line in refused.stderr.splitlines() if line.startswith("error: ")]
    assert line.startswith(f"error: --with-data: no backup was taken before {second[:12]} went into service"), line
    assert project.health()["revision"] == second


def test_over_ssh_rollback_brings_back_the_compose_file_the_env_file_and_the_data(project, sshd,  # noqa: F811
                                                                                   tmp_path):
    prod = configure_prod(project, sshd, tmp_path)
    prod.use(backup_before_deploy=True, keep_releases=1, keep_images=1)
    compose = project.path / "docker-compose.beta.yml"
    shared_env = prod.srv / "shared" / ".env"
    shared_env.write_text(f"APP_SECRET_KEY={SECRET_A}\n")
    set_greeting(compose, "hello from A")
    a = project.commit("A")
    prod.deploy()
    add_quotes(project, "written under A")
    [line_a] = prod.history()
    assert (prod.srv / "state" / "releases" / line_a["release"] / "env").read_text() == f"APP_SECRET_KEY={SECRET_A}\n"

    shared_env.write_text(f"APP_SECRET_KEY={SECRET_B}\n")
    set_greeting(compose, "hello from B")
    project.commit("B")
    prod.deploy()
    add_quotes(project, "written under B")
    assert serving_env(prod.compose)["GREETING"] == "hello from B"
    assert len(prod.releases()) == 2, "keep_releases 1, and A's release directory: a rollback runs from it"

    back = prod.inv("deploy.rollback", "--host", "prod", "--with-data")
    assert f"rolled back to {a[:12]} with the data of backup" in back.stdout
    assert project.health()["revision"] == a
    env = serving_env(prod.compose)
    assert (env["GREETING"], env["APP_SECRET_KEY"]) == ("hello from A", SECRET_A), "A's compose file and env file"
    assert quotes(project) == ["written under A"]
    assert shared_env.read_text() == f"APP_SECRET_KEY={SECRET_B}\n", "the host's own env file is left as it is"
    assert SECRET_A not in back.stdout + back.stderr and SECRET_B not in back.stdout + back.stderr
