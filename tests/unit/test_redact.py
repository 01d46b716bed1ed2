"""Credentials in configured commands: masked wherever a command is shown or stored, intact where it runs."""

import io
import json
import shlex

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from invoke import Config, Context

from droplet_deploy.commands import backup as backup_cmd
from droplet_deploy.core import config
from droplet_deploy.core.errors import CommandFailed, ConfigError
from droplet_deploy.core.redact import MASK, clean, display, redact, secret_name, secrets_in
from droplet_deploy.transaction import history
from droplet_deploy.transport.target import LocalTarget

MARKER = "MARKERSECRET123"


@pytest.mark.parametrize("argv, shown", [
    (["pg_dump", f"postgresql://app:{MARKER}@db/app"], "pg_dump 'postgresql://app:***@db/app'"),
    (["pg_dump", f"postgres://:{MARKER}@db:5432/app?sslmode=require"], "pg_dump 'postgres://:***@db:5432/app?sslmode=require'"),
    (["mysqldump", "--user=root", f"--password={MARKER}", "app"], "mysqldump --user=root '--password=***' app"),
    (["mysqldump", "--password", MARKER, "app"], "mysqldump --password '***' app"),
    (["/usr/bin/mysqldump", "-uroot", f"-p{MARKER}", "app"], "/usr/bin/mysqldump -uroot '-p***' app"),
    (["env", f"PGPASSWORD={MARKER}", "pg_dump", "app"], "env 'PGPASSWORD=***' pg_dump app"),
    (["sh", "-c", f"MYSQL_PWD={MARKER} mysqldump app"], "sh -c 'MYSQL_PWD=*** mysqldump app'"),
    (["sh", "-c", f"API_KEY='{MARKER} with space' dump"], "sh -c 'API_KEY=*** dump'"),
    (["curl", "--header", "X", f"https://api.example/dump?token={MARKER}&db=app"],
     "curl --header X 'https://api.example/dump?token=***&db=app'"),
    (["docker", "build", "--build-arg", f"NPM_TOKEN={MARKER}", "--build-arg", "BASE_IMAGE=python:3.12", "."],
     "docker build --build-arg 'NPM_TOKEN=***' --build-arg BASE_IMAGE=python:3.12 ."),
    (["tool", "--api-key", MARKER, "--clientSecret", MARKER], "tool --api-key '***' --clientSecret '***'"),
])
def test_display_masks_credentials_of_every_common_shape(argv, shown):
    assert display(argv) == shown
    assert MARKER not in display(argv)
    assert MARKER in secrets_in(argv) or MARKER + " with space" in secrets_in(argv)


@pytest.mark.parametrize("argv", [
    ["find", "/srv/app", "(", "-name", "*.pyc", ")", "-print"],  # -print is not MySQL's -pPASSWORD
    ["mkdir", "-p", "--", "/srv/backups/x"],
    ["docker", "compose", "--project-name", "shop-prod", "--file", "docker-compose.beta.yml", "up", "--detach"],
    ["env", "APP_IMAGE=shop:abc", "PUBLIC_PORT=8000", "docker", "compose", "ps"],
    ["docker", "build", "--label", "org.opencontainers.image.revision=" + "c" * 40, "--build-arg", "REVISION=abc", "."],
    ["docker", "run", "--rm", "--user", "0:0", "--mount", "type=bind,source=/b,target=/backup,readonly", "img"],
    ["ssh-keyscan", "-p", "2222", "host"],
    ["psql", "-p5432", "postgresql://db/app"],  # a port, a URL without a password
])
def test_commands_without_credentials_are_shown_exactly(argv):
    assert display(argv) == shlex.join(argv)
    assert secrets_in(argv) == []


@pytest.mark.parametrize("name, secret", [
    ("PGPASSWORD", True), ("DB_PASSWD", True), ("password", True), ("client_secret", True), ("GITHUB_TOKEN", True),
    ("api-key", True), ("apiKey", True), ("AWS_SECRET_ACCESS_KEY", True), ("X-Auth-Token", True), ("MYSQL_PWD", True),
    ("pass", True), ("APP_IMAGE", False), ("keep_images", False), ("passes", False), ("revision", False),
    ("author", False), ("PUBLIC_PORT", False), ("monkey", False),
])
def test_secret_names(name, secret):
    assert secret_name(name) is secret


def test_free_text_is_redacted_by_shape():
    text = f"connect to postgresql://app:{MARKER}@db/app failed; PGPASSWORD={MARKER} was set; keep_backups=7"
    assert redact(text) == "connect to postgresql://app:***@db/app failed; PGPASSWORD=*** was set; keep_backups=7"


def test_output_repeating_a_secret_without_its_name_is_cleaned():
    argv = ["pg_dump", f"postgresql://app:{MARKER}@db/app"]
    assert clean(f"pg_dump: password {MARKER} rejected", argv) == "pg_dump: password *** rejected"
    assert clean("fine", argv) == "fine"
    # A one-letter "secret" is not scrubbed from free text: that would mangle every message.
    assert clean("a bad day", ["mysql", "-pa"]) == "a bad day"


def test_hostile_values_stay_masked_and_quoted():
    hostile = "p@ss'; rm -rf / #$(id)"
    in_url = "p@ss';$(id)`id`@x"  # unencoded '@' and quotes, as people paste them
    argv = ["sh", "-c", "exit 3", "--password", hostile, f"postgresql://u@corp:{in_url}@h/db"]
    shown = display(argv)
    assert "rm -rf" not in shown and "$(id)" not in shown and "`id`" not in shown and "p@ss" not in shown
    assert shlex.split(shown)[-2:] == [MASK, "postgresql://u@corp:***@h/db"]
    assert secrets_in(argv) == [hostile, in_url]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
                                      blacklist_characters="@'\""), min_size=4, max_size=40))
def test_any_url_password_is_masked_everywhere(password):
    # A "password" that is a piece of the words around it ("loca" of "[local]") is in the line whatever is masked.
    assume(password not in "[local] `sh -c 'exit 3' 'postgresql://app:***@db/app'` exited 3: *** reason: ")
    argv = ["sh", "-c", "exit 3", f"postgresql://app:{password}@db/app"]
    assert password not in display(argv)
    failed = CommandFailed(argv, 3, f"could not connect: postgresql://app:{password}@db/app\n{password}\n")
    assert password not in str(failed) and password not in failed.stderr
    assert password not in redact(f"reason: postgresql://app:{password}@db/app")


def test_backup_progress_line_names_scripts_and_masks_credentials():
    argv = backup_cmd.dump_with("abc123", ["pg_dump", f"postgresql://app:{MARKER}@db/app"], "/b/x/database.dump")
    shown = backup_cmd.shown(argv)
    assert MARKER not in shown and "'postgresql://app:***@db/app'" in shown
    assert backup_cmd.shown(backup_cmd.snapshot("/data/app.db")) == "python3 -c <sqlite-snapshot.py> /data/app.db"


def test_local_target_echoes_masked_and_runs_with_the_real_value(tmp_path, capfd):
    out = io.StringIO()
    # run.echo on, as `inv --echo` sets it: Invoke's own echo of the raw line must not happen.
    target = LocalTarget(Context(Config(overrides={"run": {"in_stream": False, "echo": True}})), str(tmp_path),
                         out=out)
    # The command writes what it received into a file: the real value must arrive. Streamed, because Invoke
    # only echoes commands whose output it shows.
    result = target.run(["sh", "-c", 'printf %s "$1" > got; exit 3', "sh", f"postgresql://app:{MARKER}@db/app"],
                        check=False, stream=True)
    assert result.exit_status == 3
    assert (tmp_path / "got").read_text() == f"postgresql://app:{MARKER}@db/app"
    assert MARKER not in out.getvalue() and "postgresql://app:***@db/app" in out.getvalue()
    captured = capfd.readouterr()
    assert MARKER not in captured.out + captured.err
    with pytest.raises(CommandFailed) as info:
        target.run(["sh", "-c", 'echo "using $1" >&2; exit 3', "sh", f"postgresql://app:{MARKER}@db/app"])
    assert MARKER not in str(info.value) and str(info.value).endswith("exited 3: using postgresql://app:***@db/app")


def test_streamed_output_of_a_command_with_credentials_is_masked_even_across_chunks(tmp_path, capfd):
    # Verbose (echo on): streamed output is shown as it arrives; the echo lines go to their own stream.
    target = LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(tmp_path), echo=True,
                         out=io.StringIO())
    # Printed a few bytes at a time, so the value arrives split across reads; no newline after the last one.
    script = 'for c in $(printf %s "$1" | fold -w3); do printf %s "$c"; sleep 0.01; done; echo; printf %s "$1" >&2'
    target.run(["sh", "-c", script, "sh", f"--password={MARKER}"], stream=True)
    captured = capfd.readouterr()
    assert captured.out == "--password=***\n" and captured.err == "--password=***"
    target.run(["echo", "plain output"], stream=True)
    assert capfd.readouterr().out == "plain output\n", "commands without credentials stream untouched"


def test_dry_run_plan_masks_credentials(tmp_path):
    out = io.StringIO()
    target = LocalTarget(Context(Config(overrides={"run": {"dry": True, "in_stream": False}})), str(tmp_path), out=out)
    target.run(["mysqldump", f"-p{MARKER}", "app"])
    assert out.getvalue().strip() == "[dry-run] [local] mysqldump '-p***' app"


def test_history_reason_is_redacted(tmp_path):
    target = LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(tmp_path), echo=False)
    with pytest.raises(RuntimeError), history.recorded(target, str(tmp_path), revision="r" * 40, image="i", env="test",
                                                       who="me"):
        raise RuntimeError(f"boom at postgresql://app:{MARKER}@db/app")
    line = (tmp_path / "history.jsonl").read_text()
    assert MARKER not in line and json.loads(line)["reason"] == "RuntimeError: boom at postgresql://app:***@db/app"


def test_config_error_does_not_echo_a_mistyped_command(root):
    with pytest.raises(ConfigError) as info:
        config.load({"app_name": "shop", "environments": {"test": {}}, "backup_command": f"pg_dump postgresql://app:{MARKER}@db/app"}, root=root)
    assert MARKER not in str(info.value) and "must be a list of strings" in str(info.value)
