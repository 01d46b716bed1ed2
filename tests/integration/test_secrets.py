"""Secrets on the real engine: credentials in configured commands and the env file's values reach the commands
and the app, and appear in no output, history line or manifest; verify.build's fixes fit what failed.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import load_json_lines
from tests.integration.test_remote import SECRET as HOST_ENV_MARKER
from tests.integration.test_remote import prod  # noqa: F401 - fixture: a clone configured for prod on a real sshd

pytestmark = pytest.mark.integration

MARKER = "MARKERSECRET123"  # in configured commands
URL = f"postgresql://app:{MARKER}@db/app"
SHOWN_URL = "postgresql://app:***@db/app"
BUILD_MARKER = "BUILDARGMARKER456"  # in build_args
ENV_MARKER = "ENVFILEMARKER789-" + "x" * 32  # in the env file (long enough for the app's secret key)
MARKERS = (MARKER, BUILD_MARKER, ENV_MARKER)


def no_marker(where: str, text: str) -> None:
    for marker in MARKERS:
        assert marker not in text, f"{marker} leaked into {where}:\n{text[-3000:]}"


def printed(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def use_env_file(project) -> None:
    """The app reads the (git-ignored) .env, as production's compose file does."""
    project.write(".env", f"APP_SECRET_KEY={ENV_MARKER}\n")
    compose = project.path / "docker-compose.test.yml"
    compose.write_text(compose.read_text().replace("      - config/development.env\n",
                                                   "      - config/development.env\n      - .env\n", 1))
    project.commit("the test stack reads .env")


def test_credentials_reach_the_commands_and_no_output_history_or_manifest(project):
    use_env_file(project)
    project.configure(
        build_args={"DEPLOY_TOKEN": BUILD_MARKER},
        environments={"test": {
            "env_file": ".env",
            "backup_before_deploy": True,
            # Runs in the app container; its stdout is the dump, so the dump shows what the command received.
            "backup_command": ["sh", "-c", 'printf "%s" "$1"', "sh", URL],
            "restore_command": ["sh", "-c", 'cat >/dev/null; echo "restore into $1 refused" >&2; exit 4', "sh", URL],
        }},
    )
    outputs = {"deploy": project.inv("deploy.test", "--verbose")}  # verbose: every command is shown
    (app,) = project.containers()
    received = subprocess.run(["docker", "exec", app, "printenv", "APP_SECRET_KEY"], capture_output=True, text=True)
    assert received.stdout.strip() == ENV_MARKER, "the app got the env file's value"
    assert "--build-arg DEPLOY_TOKEN " in outputs["deploy"].stderr, "the build line names it, its value is elsewhere"

    # `--echo` asks Invoke to print every command it runs: the toolkit's own (masked) echo must be the only one.
    outputs["backup"] = project.inv("--echo", "backup")
    (backup_id,) = [p.name for p in (project.path / "backups" / "test").iterdir()]
    stored = project.path / "backups" / "test" / backup_id
    assert (stored / "database.dump").read_text() == URL, "the backup command ran with the real value"
    assert SHOWN_URL in outputs["backup"].stderr

    outputs["dry deploy"] = project.inv("--dry", "deploy.test")
    assert SHOWN_URL in outputs["dry deploy"].stderr and "--build-arg DEPLOY_TOKEN " in outputs["dry deploy"].stderr

    refused = project.inv("backup.restore", backup_id, "--yes", check=False)
    outputs["restore"] = refused
    assert refused.returncode == 1
    assert f"exited 4: restore into {SHOWN_URL} refused" in refused.stderr, refused.stderr

    project.configure(environments={"test": {
        "backup_command": ["sh", "-c", 'echo "dump of $1 failed" >&2; exit 3', "sh", URL]}})
    failed = project.inv("deploy.test", check=False)
    outputs["failed deploy"] = failed
    assert failed.returncode == 1
    assert f"exited 3: dump of {SHOWN_URL} failed" in failed.stderr, failed.stderr

    project.configure(check_command=["sh", "-c", 'echo "checking $1"; exit 1', "sh", URL])
    unverified = project.inv("verify.build", check=False)
    outputs["verify"] = unverified
    assert unverified.returncode == 1 and f"check command exited 1: checking {SHOWN_URL}" in unverified.stdout

    outputs["status"] = project.inv("deploy.status")
    outputs["logs"] = project.inv("deploy.logs", "--tail", "500")
    for name, result in outputs.items():
        no_marker(f"`inv {name}`", printed(result))

    history = (project.path / ".deploy" / "test" / "history.jsonl").read_text()
    no_marker("the history", history)
    reasons = [entry["reason"] for entry in load_json_lines(history)]
    assert any(SHOWN_URL in reason for reason in reasons), "the failures were recorded, masked"
    assert "restore" in [entry["action"] for entry in load_json_lines(history)]
    for manifest in (project.path / "backups" / "test").glob("*/manifest.json"):
        no_marker(str(manifest), manifest.read_text())
        assert json.loads(manifest.read_text())["database"]["kind"] == "command"


def test_over_ssh_the_plan_the_echo_and_the_backup_mask_credentials(prod):  # noqa: F811 - the fixture
    prod.deploy()
    prod.use(backup_before_deploy=True, backup_command=["sh", "-c", 'printf "%s" "$1"', "sh", URL])
    outputs = {
        "backup": prod.inv("--echo", "backup", "--host", "prod"),
        "dry deploy": prod.inv("--dry", "deploy.prod", "--host", "prod"),
        "status": prod.inv("deploy.status", "--host", "prod"),
        "logs": prod.inv("deploy.logs", "--host", "prod", "--tail", "500"),
    }
    (dump,) = (prod.srv / "backups" / "prod").glob("*/database.dump")
    assert dump.read_text() == URL, "the command ran on the host with the real value"
    host = f"[{prod.sshd.user}@prod]"
    assert f"{host} $ " in outputs["backup"].stderr and SHOWN_URL in outputs["backup"].stderr
    assert f"[dry-run] {host}" in outputs["dry deploy"].stderr and SHOWN_URL in outputs["dry deploy"].stderr
    for name, result in outputs.items():
        no_marker(f"`inv {name}` over SSH", printed(result))
        assert HOST_ENV_MARKER not in printed(result), f"the host's .env leaked into `inv {name}`"
    no_marker("the manifest", dump.with_name("manifest.json").read_text())


def test_verify_build_on_a_root_image_names_the_user_fix_not_no_cache(project):
    dockerfile = (project.path / "Dockerfile").read_text()
    assert dockerfile.count("USER 10001:10001\n") == 2
    # The production stage (the last one) without its USER line: the image runs as root.
    head, _, tail = dockerfile.rpartition("USER 10001:10001\n")
    project.write("Dockerfile.root", head + tail)
    project.commit("an image that runs as root")
    project.configure(dockerfile="Dockerfile.root")

    result = project.inv("build", "verify.build", check=False)
    assert result.returncode == 1
    assert "PASS  no bytecode" in result.stdout and "FAIL  non-root user    runs as root (uid 0)" in result.stdout
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "failed 1 check(s): non-root user (add a `USER` line with a non-root uid to the Dockerfile" in line
    assert "--no-cache" not in line
