"""verify.build: each check brings its own fix, and the final line names the fixes of the checks that failed."""

import json

import pytest

from droplet_deploy.commands import docker
from droplet_deploy.commands import verify as verify_cmd
from droplet_deploy.core import config
from droplet_deploy.core.errors import VerifyFailed
from droplet_deploy.steps import verify
from droplet_deploy.transport.target import Result

REV = "c" * 40
NO_CACHE = "--no-cache"


class ScriptedImage:
    """Answers verify's probes the way `docker` would for an image with the given traits.

    A stand-in for the engine, so that every combination of failures reaches VerifyFailed without building
    images; the integration test builds a real root image.
    """

    name = "local"
    dry = False

    def __init__(self, *, label=REV, bytecode="", check_output="app ok: 9 routes", check_status=0, uid="10001",
                 env_files="", shell=True):
        self.shell = shell  # whether the image has `sh`, which runs all checks in one container
        self.answers = {
            "inspect": (0, json.dumps({docker.REVISION_LABEL: label})),
            "bytecode": (0, bytecode),
            "check": (check_status, check_output),
            "id": (0, uid + "\n"),
            "env": (0, env_files),
        }
        self.probed = []

    def probe(self, argv, *, check=False, timeout=None):
        argv = list(argv)
        self.probed.append(argv)
        if argv[:3] == ["docker", "image", "inspect"]:
            key = "inspect"
        elif argv[argv.index("--entrypoint") + 1] == "sh":
            return self.one_container(argv)
        elif "--entrypoint" in argv:
            entrypoint = argv[argv.index("--entrypoint") + 1]
            key = {"find": "env" if "/" in argv else "bytecode", "id": "id"}.get(entrypoint, "check")
        else:
            raise AssertionError(f"unexpected probe {argv}")
        status, out = self.answers[key]
        return Result(tuple(argv), status, out, "")


    def one_container(self, argv):
        """Every check in one `sh`, each answer framed by the marker the command carries (docker exits 127 when
        the image has no `sh`)."""
        if not self.shell:
            return Result(tuple(argv), 127, "", "exec: \"sh\": executable file not found in $PATH")
        marker = argv[argv.index("-c") + 3]
        out = ""
        for section, key in (("bytecode", "bytecode"), ("user", "id"), ("env", "env"), ("imports", "check")):
            status, text = self.answers[key]
            out += f"{marker} begin {section}\n{text}\n{marker} end {section} {status}\n"
        return Result(tuple(argv), 0, out, "")


@pytest.fixture
def settings(root):
    return config.load({"app_name": "shop", "environments": {"test": {}}}, root=root)


def failure(settings, **traits) -> VerifyFailed:
    with pytest.raises(VerifyFailed) as info:
        verify.verify_image(ScriptedImage(**traits), settings, "shop:abc", REV)
    return info.value


def test_a_sound_image_passes_every_check(settings):
    checks = verify.verify_image(ScriptedImage(), settings, "shop:abc", REV)
    assert [c.name for c in checks] == ["revision label", "no bytecode", "app imports", "non-root user",
                                        "no .env inside"]
    assert all(c.ok and not c.fix for c in checks)


@pytest.mark.parametrize("traits, check, fix, no_cache", [
    ({"uid": "0"}, "non-root user", "add a `USER` line with a non-root uid to the Dockerfile", False),
    ({"env_files": "/srv/app/.env\n"}, "no .env inside", "add .env and .env.* to .dockerignore", False),
    ({"label": "d" * 40}, "revision label", "`ARG REVISION` and `LABEL org.opencontainers.image.revision", False),
    ({"bytecode": "/srv/app/__pycache__\n"}, "no bytecode", "PYTHONDONTWRITEBYTECODE=1", True),
    ({"check_status": 1, "check_output": "ImportError: no module named flask"}, "app imports",
     "run `docker run --rm --network none --entrypoint python3 shop:abc -m app --check`", False),
])
def test_the_final_line_gives_the_failed_checks_own_fix(settings, traits, check, fix, no_cache):
    err = failure(settings, **traits)
    assert err.failed == [check]
    line = str(err)
    assert line.startswith(f"verify.build: shop:abc failed 1 check(s): {check} (")
    assert fix in line and line.endswith("; then run `inv build verify.build`)")
    assert (NO_CACHE in line) is no_cache, "--no-cache is the fix for bytecode only"


def test_several_failures_list_each_fix_under_its_check(settings):
    line = str(failure(settings, uid="0", env_files="/.env\n"))
    assert "failed 2 check(s): non-root user, no .env inside" in line
    assert "(non-root user: add a `USER` line" in line and "; no .env inside: add .env and .env.*" in line
    assert NO_CACHE not in line


def test_a_missing_image_says_build_it_first(settings):
    target = ScriptedImage()
    target.answers["inspect"] = (1, "")
    with pytest.raises(VerifyFailed) as info:
        verify.verify_image(target, settings, "shop:abc", REV)
    err = info.value
    assert err.failed == ["image exists"] and str(err).endswith("(build it first; then run `inv build verify.build`)")
    assert len(target.probed) == 1, "no container is started for an image that is not there"


def test_check_output_is_shown_with_the_commands_credentials_masked(root):
    settings = config.load({"app_name": "shop", "environments": {"test": {}},
                            "check_command": ["app-check", "--database", "postgresql://app:MARKERSECRET123@db/app"]},
                           root=root)
    target = ScriptedImage(check_status=2, check_output="cannot reach postgresql://app:MARKERSECRET123@db/app")
    reported = []
    with pytest.raises(VerifyFailed) as info:
        verify.verify_image(target, settings, "shop:abc", REV, report=reported.append)
    shown = " ".join(c.detail + " " + c.fix for c in reported) + str(info.value)
    assert "MARKERSECRET123" not in shown
    assert "postgresql://app:***@db/app" in shown
    assert any("MARKERSECRET123" in " ".join(argv) for argv in target.probed), "the check ran with the real value"


@pytest.mark.parametrize("check", [
    verify.check_revision({}, REV),
    verify.check_bytecode(0, "/srv/app/x.pyc\n", "/srv/app"),
    verify.check_bytecode(2, "", "/srv/app"),
    verify.check_imports(1, "boom"),
    verify.check_imports(0, "no count"),
    verify.check_imports(0, "0 routes"),
    verify.check_user(0, "0\n"),
    verify.check_user(127, ""),
    verify.check_no_env(0, "/.env\n"),
    verify.check_no_env(2, ""),
], ids=lambda c: f"{c.name}:{c.detail[:30]}")
def test_every_failing_check_carries_a_fix(check):
    assert not check.ok and check.fix


def test_a_wrong_app_dir_is_not_blamed_on_bytecode():
    check = verify.check_bytecode(2, "", "/wrong")
    assert "deploy.app_dir" in check.fix and NO_CACHE not in check.fix


def test_all_checks_share_one_container_when_the_image_has_a_shell(settings):
    target = ScriptedImage()
    checks = verify.verify_image(target, settings, "shop:abc", REV)
    assert [c.name for c in checks] == ["revision label", "no bytecode", "app imports", "non-root user",
                                        "no .env inside"]
    started = [argv for argv in target.probed if argv[:2] == ["docker", "run"]]
    assert len(started) == 1 and started[0][started[0].index("--entrypoint") + 1] == "sh"


@pytest.mark.parametrize("shell", [True, False])
def test_an_image_without_a_shell_gets_a_container_per_check_with_the_same_verdicts(settings, shell):
    target = ScriptedImage(shell=shell, uid="0", bytecode="/srv/app/x.pyc\n")
    with pytest.raises(VerifyFailed) as info:
        verify.verify_image(target, settings, "shop:abc", REV)
    assert info.value.failed == ["no bytecode", "non-root user"]
    started = [argv for argv in target.probed if argv[:2] == ["docker", "run"]]
    assert len(started) == (1 if shell else 5)  # without sh: the attempt, then one per check


def test_sections_are_read_whatever_the_checks_print():
    m = "f00d"
    out = (f"{m} begin bytecode\n\n{m} end bytecode 0\n"           # printed nothing
           f"{m} begin user\n10001\n\n{m} end user 0\n"          # a line with its newline
           f"{m} begin env\n/.env\n/srv/.env.prod\n\n{m} end env 1\n"
           f"{m} begin imports\n{m} end? 3 routes\n{m} end imports 7\n")  # no newline, and a marker look-alike
    sections = verify.parse_sections(out, m)
    assert sections["bytecode"] == verify.Ran(0, "")
    assert sections["user"] == verify.Ran(0, "10001\n")
    assert sections["env"] == verify.Ran(1, "/.env\n/srv/.env.prod\n")
    assert sections["imports"] == verify.Ran(7, f"{m} end? 3 routes")


def test_a_section_cut_off_counts_as_failed_and_no_section_means_no_shell():
    m = "f00d"
    sections = verify.parse_sections(f"{m} begin bytecode\n\n{m} end bytecode 0\n{m} begin user\n100", m)
    assert sections["user"] == verify.Ran(-1, "100") and sections["imports"] == verify.Ran(-1, "")
    assert verify.parse_sections("exec: sh: not found", m) is None


def test_the_one_container_script_takes_every_value_as_a_parameter():
    hostile = "nginx; rm -rf / #$(touch /tmp/pwned)"
    argv = verify_cmd.in_one_container("shop:abc", "f00d", hostile, hostile, [hostile, "--check"])
    assert argv[:5] == ["docker", "run", "--rm", "--network", "none"]
    script = argv[argv.index("-c") + 1]
    assert hostile not in script and "f00d" not in script, "the script is constant; values are parameters"
    assert argv[-6:] == ["verify", "f00d", hostile, hostile, hostile, "--check"]
