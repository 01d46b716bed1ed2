"""A table of hostile inputs: every shape of credential users put in commands, in every configured command the
toolkit runs, shown or stored. Each case is a real command line as the toolkit builds it from the settings;
the value must reach the command intact and nothing shown or stored (echo, dry run, error line, a failure's
output, the history) may hold it."""

import io
import json
import shlex

import pytest
from invoke import Config, Context

from droplet_deploy.commands import backup as backup_cmd
from droplet_deploy.commands import docker
from droplet_deploy.commands import hooks as hooks_cmd
from droplet_deploy.commands import verify as verify_cmd
from droplet_deploy.commands.compose import Compose
from droplet_deploy.core import config
from droplet_deploy.core.errors import CommandFailed
from droplet_deploy.core.redact import clean, display, redact
from droplet_deploy.transaction import history
from droplet_deploy.transport.target import LocalTarget

S = "Zq8MARKERsecret"  # long enough that free text is scrubbed of it too
TELEGRAM = "123456789:" + S

# Each shape: a command holding S, as users write it.
SHAPES = {
    "url password": ["pg_dump", f"postgresql://app:{S}@db/app"],
    "url password with @": ["pg_dump", f"postgresql://app:p@{S}@db/app"],
    "bearer header": ["curl", "-fsS", "-H", f"Authorization: Bearer {S}", "https://api.example/dump"],
    "basic header": ["curl", "--header", f"authorization: Basic {S}", "https://api.example/dump"],
    "api key header": ["curl", "-H", f"X-Api-Key: {S}", "https://api.example/dump"],
    "curl -u": ["curl", "-u", f"backup:{S}", "https://files.example/db.dump"],
    "curl -u glued": ["curl", f"-ubackup:{S}", "https://files.example/db.dump"],
    "curl --user=": ["curl", f"--user=backup:{S}", "https://files.example/db.dump"],
    "slack webhook": ["curl", "-d", "deployed", f"https://hooks.slack.com/services/T0AAA/B0BBB/{S}"],
    "telegram bot url": ["curl", f"https://api.telegram.org/bot{TELEGRAM}/sendMessage", "-d", "text=ok"],
    "discord webhook": ["curl", "-d", "{}", f"https://discord.com/api/webhooks/1234/{S}"],
    "sentry dsn": ["sentry-cli", "send-event", "--dsn", f"https://{S}@o1.ingest.sentry.io/42"],
    "sentry dsn bare": ["notify", f"https://{S}@o1.ingest.sentry.io/42"],
    "sentry dsn env": ["env", f"SENTRY_DSN=https://{S}@o1.ingest.sentry.io/42", "release"],
    "mysql -p glued": ["mysqldump", "-uroot", f"-p{S}", "app"],
    "mysql -p in sh -c": ["sh", "-c", f"mysqldump -uroot -p{S} --single-transaction app"],
    "mysql -p quoted in sh -c": ["sh", "-c", f"exec mysqldump -uroot -p'{S}' app"],
    "redis-cli -a": ["redis-cli", "-h", "redis", "-a", S, "--rdb", "/dev/stdout"],
    "redis-cli -a in sh -c": ["sh", "-c", f"redis-cli -h redis -a {S} --rdb /dev/stdout"],
    "sshpass -p": ["sshpass", "-p", S, "rsync", "-a", "/data", "vault:/srv"],
    "sshpass -p in sh -c": ["sh", "-c", f"sshpass -p {S} rsync -a /data vault:/srv"],
    "json token": ["curl", "-d", f'{{"token": "{S}", "channel": "ops"}}', "https://chat.example/post"],
    "json password": ["curl", "--data", f'{{"user":"ops","password":"{S}"}}', "https://chat.example/login"],
    "json in sh -c": ["sh", "-c", f'curl -d \'{{"token":"{S}"}}\' https://chat.example/post'],
    "password flag": ["mysqldump", "--password", S, "app"],
    "password flag in sh -c": ["sh", "-c", f"pg_restore --password {S} --dbname app"],
    "password assignment": ["env", f"PGPASSWORD={S}", "pg_dump", "app"],
    "token query": ["curl", f"https://api.example/dump?token={S}&db=app"],
}


def _settings(root, **raw):
    return config.load({"app_name": "shop", "environments": {"test": {}}, **raw}, "test", root=root)


def _compose():
    return Compose(project="shop-test", file="docker-compose.test.yml", variables={"APP_IMAGE": "shop:abc"})


# Each configured command: how the toolkit turns the setting into the argv it runs.
def _backup(root, command):
    return backup_cmd.dump_with("shop-app-1", _settings(root, backup_command=command).backup_command,
                                "/srv/backups/test/.incoming-x/database.dump")


def _restore(root, command):
    return backup_cmd.load_with("shop-app-1", _settings(root, restore_command=command).restore_command,
                                "/srv/backups/test/x/database.dump")


def _pre_switch(root, command):
    (hook,) = _settings(root, hooks={"pre_switch": [command]}).hooks.pre_switch
    return _compose().run("app", hook)


def _post_deploy(root, command):
    settings = _settings(root, hooks={"post_deploy": [command]})
    (hook,) = settings.hooks.post_deploy
    return hooks_cmd.post_deploy("python3", settings.hooks.post_deploy_timeout, {"DEPLOY_ENV": "test"}, hook)


def _check(root, command):
    check = _settings(root, check_command=command).check_command
    return verify_cmd.in_one_container("shop:abc", "m" * 32, "/app", ".env", check)


def _check_rerun(root, command):
    check = _settings(root, check_command=command).check_command
    return docker.run_once("shop:abc", check[1:], entrypoint=check[0])


def _exec(root, command):
    return _compose().run("app", command)  # deploy.exec takes its argv from the command line as given


def _build_args(root, command):
    # A build arg is one value: the argument of the shape's command that holds the credential, under a name that
    # does not say so (and one that does).
    (value,) = [item for item in command if S in item]
    settings = _settings(root, build_args={"EXTRA": value, "NPM_TOKEN": S})
    return docker.build(image="shop:abc", revision="r" * 40, context=".", dockerfile="Dockerfile",
                        build_args=settings.build_args)


COMMANDS = {"backup_command": _backup, "restore_command": _restore, "hooks.pre_switch": _pre_switch,
            "hooks.post_deploy": _post_deploy, "check_command": _check, "check_command rerun": _check_rerun,
            "deploy.exec": _exec}
# The shapes a single value carries by itself (a flag's value is a credential only beside its flag).
VALUE_SHAPES = ["url password", "url password with @", "bearer header", "basic header", "api key header",
                "slack webhook", "telegram bot url", "discord webhook", "sentry dsn bare", "sentry dsn env",
                "json token", "json password", "password assignment", "token query"]
CASES = [(setting, shape) for setting in COMMANDS for shape in SHAPES] + \
    [("build_args", shape) for shape in VALUE_SHAPES]


@pytest.mark.parametrize("setting, shape", CASES)
def test_every_configured_command_masks_every_shape(root, tmp_path, setting, shape):
    argv = {**COMMANDS, "build_args": _build_args}[setting](root, SHAPES[shape])
    assert any(S in item for item in argv), "the command runs with the real value"

    shown = display(argv)
    assert S not in shown and "***" in shown
    assert shlex.split(shown)  # still one well-quoted line

    # Its failure, as the user and the history see it, with output repeating the value without its name
    # (p@S: the whole of the "url password with @" shape's password).
    failed = CommandFailed(argv, 2, f"connecting with p@{S}\nauthentication failed for p@{S}\n", where="deploy@prod")
    assert S not in str(failed) and S not in failed.stderr
    assert S not in clean(f"debug: argv was {' '.join(argv)}", argv)

    # The dry-run plan and the echo line.
    out = io.StringIO()
    LocalTarget(Context(Config(overrides={"run": {"dry": True, "in_stream": False}})), str(tmp_path), out=out).run(argv)
    assert S not in out.getvalue() and out.getvalue().startswith("[dry-run] [local] ")

    # The history record of a change that failed with it.
    target = LocalTarget(Context(Config(overrides={"run": {"in_stream": False}})), str(tmp_path), echo=False)
    with pytest.raises(CommandFailed), history.recorded(target, str(tmp_path), revision="r" * 40, image="i",
                                                        env="test", who="me"):
        raise failed
    line = (tmp_path / "history.jsonl").read_text()
    assert S not in line and json.loads(line)["result"] == "failed"


@pytest.mark.parametrize("shape", SHAPES)
def test_free_text_quoting_a_command_of_every_shape_is_masked(shape):
    """An error from a library quotes the command line it ran (Invoke's timeout does): no argv to go by."""
    line = shlex.join(SHAPES[shape])
    assert S not in redact(f"Command did not complete within 5 seconds!\n\nCommand: {line!r}\n")


@pytest.mark.parametrize("argv", [
    ["docker", "run", "--rm", "-p", "127.0.0.1:8000:8000", "-u", "0:0", "--env", "APP_ENV=prod", "shop:abc"],
    ["curl", "-fsS", "-H", "Content-Type: application/json", "-d", '{"channel": "ops", "text": "ok"}',
     "https://chat.example/post"],
    ["sh", "-c", "find /app -name '*.pyc' -print && ssh deploy@prod uptime"],
    ["git", "clone", "ssh://git@github.com/acme/shop.git"],
    ["redis-cli", "-h", "redis", "ping"],
    ["sh", "-c", "mysql -h db -P 3306 -e 'select 1'"],
    ["curl", "-u", "anonymous", "https://files.example/"],
])
def test_lookalikes_without_credentials_are_shown_exactly(argv):
    assert display(argv) == shlex.join(argv)
