"""Production over SSH, end to end: a real OpenSSH server on loopback (tests/support/sshd.py) in front of the
real Docker engine, and the `inv` command run the way users run it, from a temporary clone.

The test sshd logs in as the current user, so the "remote" host is this machine: ``remote_dir`` is a directory
under tmp_path that the tests can inspect directly, and containers land on the same engine. Nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from invoke import Config, Context

from droplet_deploy.core import config
from droplet_deploy.core.errors import ConnectError
from droplet_deploy.host.connect import connect
from droplet_deploy.transaction import lock
from tests.conftest import VENV_BIN, Project, free_port, wait_for
from tests.support.secrets import image_members_holding
from tests.support.sshd import SshdHandle, ensure_sshd_available, running_sshd

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-value-that-must-never-be-printed"


@dataclass
class Prod:
    """The clone configured for `prod` on the test sshd, and what the tests look at on the host."""

    project: Project
    sshd: SshdHandle
    srv: Path

    def inv(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        return self.project.inv(*args, check=check, timeout=timeout)

    def deploy(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.inv("deploy.prod", "--host", "prod", *extra, check=check)

    @property
    def lock(self) -> Path:
        return self.srv / "state" / "lock"

    def history(self) -> list[dict]:
        path = self.srv / "state" / "history.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def releases(self) -> list[str]:
        path = self.srv / "releases"
        return sorted(p.name for p in path.iterdir()) if path.exists() else []

    def logins(self) -> int:
        return self.sshd.log.read_text(errors="replace").count("Accepted publickey")

    def containers(self, service: str = "app", *, all_states: bool = False) -> list[str]:
        argv = ["docker", "ps", "-q", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.compose}",
                "--filter", f"label=com.docker.compose.service={service}", *(["--all"] if all_states else [])]
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split()

    @property
    def compose(self) -> str:
        return f"{self.project.name}-prod"

    def use(self, **settings: object) -> None:
        self.project.configure(environments={"prod": settings})

    def plant_lock(self, pid: int, holder: str = "alice@laptop") -> None:
        """A lock held from this machine (its host name, boot id and pid namespace) by ``pid``."""
        here = lock.this_machine()
        self.lock.mkdir(parents=True)
        (self.lock / "holder.json").write_text(json.dumps({
            "holder": holder, "pid": pid, "revision": "c0ffee" * 6 + "c0ff", "started_at": time.time() - 600,
            "machine": here.name, "boot_id": here.boot_id, "pid_ns": here.pid_ns}))


@pytest.fixture
def prod(project, sshd, tmp_path):
    return configure_prod(project, sshd, tmp_path)


def configure_prod(project: Project, sshd: SshdHandle, tmp_path: Path) -> Prod:
    srv = tmp_path / "srv"
    shared = srv / "shared"
    shared.mkdir(parents=True)
    (shared / ".env").write_text(f"APP_SECRET_KEY={SECRET}\n")
    (shared / ".env").chmod(0o600)
    project.configure(environments={"prod": {
        "project": f"{project.name}-prod", "public_port": project.port, "host": "prod", "remote_dir": str(srv),
        "env_file": ".env", "ssh_config": str(sshd.ssh_config), "known_hosts": str(sshd.known_hosts),
        "drain_seconds": 2, "backup_before_deploy": False, "keep_releases": 5,
    }})
    return Prod(project, sshd, srv)


def strict_alias(sshd: SshdHandle, path: Path, identity: Path | None = None, port: int | None = None) -> Path:
    """The alias without the harness's UserKnownHostsFile, so only deploy.known_hosts decides trust."""
    path.write_text(f"Host {sshd.alias}\n    HostName {sshd.host}\n    Port {port or sshd.port}\n    User {sshd.user}\n"
                    f"    IdentityFile {identity or sshd.identity}\n    IdentitiesOnly yes\n")
    return path


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def commit_change(project: Project, label: str) -> str:
    routes = project.path / "app" / "routes.py"
    routes.write_text(routes.read_text() + f"\nRELEASE_NOTE = {label!r}\n")
    return project.commit(label)


# --- deploy and day-two tasks -----------------------------------------------------------------------------------


def test_deploy_over_ssh_proves_the_revision_logs_in_once_and_the_day_two_tasks_work(prod, capsys, tmp_path):
    project = prod.project
    head = project.head()
    logins = prod.logins()
    started = time.monotonic()
    result = prod.deploy()
    wall = time.monotonic() - started
    connections = prod.logins() - logins

    assert f"deployed {head[:12]} to prod on {prod.sshd.user}@prod" in result.stdout
    answer = project.health()  # through the public port, as a user's browser would
    assert (answer["status"], answer["revision"]) == ("healthy", head)
    assert connections == 1, "one SSH connection carries every command, upload and tunnel of a deploy"
    [record] = prod.history()
    assert (record["revision"], record["result"], record["env"]) == (head, "ok", "prod")
    assert not prod.lock.exists()

    [name] = prod.releases()
    release = prod.srv / "releases" / name
    assert name.endswith("-" + head[:12])
    assert not (release / ".env").exists(), "compose reads the env file from shared/: it is not in the build context"
    assert not (release / ".git").exists(), "the host gets the tree of the commit, no repository and no credentials"
    assert (release / "app" / "routes.py").read_bytes() == (project.path / "app" / "routes.py").read_bytes()
    assert SECRET not in result.stdout + result.stderr
    with capsys.disabled():
        print(f"\n[measure] deploy.prod over SSH: {wall:.1f}s wall, {connections} SSH connection(s)")

    logins = prod.logins()
    status = prod.inv("deploy.status", "--host", "prod").stdout
    assert prod.logins() - logins == 1
    assert f"revision   {head[:12]}" in status and "health     OK: healthy" in status
    assert "lock       free" in status and "<- serving" in status and name in status
    assert f"{head[:12]}  deploy   ok" in status

    logs = prod.inv("deploy.logs", "--host", "prod", "--service", "app", "--tail", "50", "--grep", "api/health")
    lines = [line for line in logs.stdout.splitlines() if line.strip()]
    assert lines and all("api/health" in line for line in lines)
    assert SECRET not in logs.stdout

    # --follow runs until Ctrl-C, which ends it cleanly (exit 0, no traceback) and at once.
    followed = tmp_path / "follow.out"
    with followed.open("w") as sink:
        follow = subprocess.Popen([str(VENV_BIN / "inv"), "deploy.logs", "--host", "prod", "--follow", "--tail", "1"],
                                  cwd=project.path, env=project.env(), stdout=sink, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: followed.read_text().strip() != "", timeout=30)
        project.get("/api/health")
        assert wait_for(lambda: len(followed.read_text().splitlines()) >= 2, timeout=15)
        follow.send_signal(signal.SIGINT)
        assert follow.wait(timeout=15) == 0
        assert "Traceback" not in follow.stderr.read()
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()

    prod.inv("deploy.stop", "--host", "prod")
    assert prod.containers() == [] and len(prod.containers(all_states=True)) == 1
    started_again = prod.inv("deploy.start", "--host", "prod").stdout
    assert f"healthy at revision {head[:12]}" in started_again
    assert project.health()["revision"] == head
    restarted = prod.inv("deploy.restart", "--host", "prod", "--service", "app").stdout
    assert f"healthy at revision {head[:12]}" in restarted
    assert prod.inv("deploy.unlock", "--host", "prod").stdout.strip() == f"no deploy lock on {prod.sshd.user}@prod"
    assert not prod.lock.exists()


def test_redeploy_of_a_dirty_tree_ships_it_as_is_and_prunes_releases_no_container_uses(prod):
    project = prod.project
    prod.use(keep_releases=1)
    prod.deploy()
    [first] = prod.releases()
    forgotten = prod.srv / "releases" / "20000101T000000Z-000000000000"
    forgotten.mkdir()
    interrupted = prod.srv / "releases" / ".incoming-20000102T000000Z-000000000000"  # a killed deploy's
    interrupted.mkdir()

    head = project.head()
    routes = project.path / "app" / "routes.py"
    routes.write_text(routes.read_text() + "\nRELEASE_NOTE = 'uncommitted'\n")
    project.write("app/NOTES.txt", "untracked, not ignored: shipped\n")
    project.write("app/__pycache__/stale.cpython-311.pyc", "ignored by git: never shipped")
    refused = prod.deploy(check=False)
    assert refused.returncode == 1 and "--allow-dirty" in error_lines(refused)[0]
    prod.deploy("--allow-dirty")
    assert project.health()["revision"] == f"{head}-dirty"

    releases = prod.releases()
    [dirty] = [r for r in releases if r.endswith(f"-{head[:12]}-dirty")]
    shipped = prod.srv / "releases" / dirty
    assert (shipped / "app" / "routes.py").read_bytes() == routes.read_bytes()
    assert (shipped / "app" / "NOTES.txt").exists() and not (shipped / "app" / "__pycache__").exists()
    assert forgotten.name not in releases, "older than keep_releases and used by no container: removed"
    assert interrupted.name not in releases, "a half-made release is never in use (the deploy lock): removed"
    # keep_releases is 1, yet the first stays: the proxy was created from it and still mounts its config.
    assert first in releases
    assert [r["result"] for r in prod.history()] == ["ok", "ok"]


# --- a hardened host: no SFTP subsystem -------------------------------------------------------------------------


@pytest.fixture
def bare_sshd(tmp_path):
    reason = ensure_sshd_available()
    if reason:
        pytest.skip(reason)
    with running_sshd(tmp_path / "bare-sshd", sftp=False) as handle:
        yield handle


def test_a_host_without_sftp_takes_a_deploy_and_a_backup_download_and_no_secret_leaves_it(project, bare_sshd,
                                                                                          tmp_path):
    import fabric
    import paramiko

    # The harness is what the bug report described: this sshd closes any SFTP channel.
    probe = fabric.Connection(bare_sshd.alias, config=bare_sshd.fabric_config(),
                              connect_kwargs=bare_sshd.connect_kwargs())
    with pytest.raises(paramiko.SSHException):
        probe.sftp()
    probe.close()
    probed = len(bare_sshd.log.read_text(errors="replace"))

    prod = configure_prod(project, bare_sshd, tmp_path)
    secret = f"marker-{uuid.uuid4().hex}"  # made here, so no shipped file (these tests included) can hold it
    (prod.srv / "shared" / ".env").write_text(f"APP_SECRET_KEY={secret}\n")
    # An app whose Dockerfile copies its whole build context and whose .dockerignore lets env files through:
    # the secret still reaches no layer, because the env file is never in the context.
    ignore = project.path / ".dockerignore"
    ignore.write_text("".join(line for line in ignore.read_text().splitlines(True) if ".env" not in line))
    dockerfile = project.path / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nCOPY . /srv/build-context/\n")
    head = project.commit("an app that copies its whole build context")

    deployed = prod.deploy()
    assert project.health()["revision"] == head
    [name] = prod.releases()
    release = prod.srv / "releases" / name
    assert not (release / ".env").exists()
    assert not [p for p in release.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]

    downloads = tmp_path / "downloads"
    backed = prod.inv("backup", "--host", "prod", "--download", str(downloads))
    backup_id = backed.stdout.split()[1].rstrip(":")
    stored = prod.srv / "backups" / "prod" / backup_id
    downloaded = downloads / backup_id
    assert f"downloaded to {downloaded}" in backed.stdout
    assert os.listdir(stored.parent) == [backup_id], "sealed under its id; nothing left under a temporary name"
    for copy in (stored, downloaded):
        modes = {str(p.relative_to(copy)): p.stat().st_mode & 0o777 for p in [copy, *copy.rglob("*")]}
        assert modes.pop(".") == 0o700
        assert set(modes.values()) <= {0o600, 0o700} and list(modes.values()).count(0o600) >= 5, modes
    # The host keeps its own record of the check it ran (verified.json); the copy is the backup itself.
    assert (stored / "verified.json").is_file()
    assert sorted(p.relative_to(downloaded) for p in downloaded.rglob("*") if p.is_file()) == \
        sorted(p.relative_to(stored) for p in stored.rglob("*") if p.is_file() and p.name != "verified.json")
    assert (downloaded / "database.sqlite3").read_bytes() == (stored / "database.sqlite3").read_bytes()
    assert "intact" in prod.inv("backup.verify", str(downloaded)).stdout

    # --download at an existing file: one line, the file untouched, no backup taken.
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    refused = prod.inv("backup", "--host", "prod", "--download", str(existing), check=False)
    assert refused.returncode == 2
    [line] = error_lines(refused)
    assert f"--download {existing}: {existing} is an existing file, not a directory" in line
    assert existing.read_text() == "mine" and os.listdir(stored.parent) == [backup_id]

    log = bare_sshd.log.read_text(errors="replace")[probed:]
    assert "Accepted publickey" in log and "subsystem request" not in log, "no SFTP channel was ever asked for"

    # The secret is where it belongs, the running container's environment, and nowhere else.
    [container] = prod.containers()
    environment = subprocess.run(["docker", "exec", container, "env"], capture_output=True, text=True, check=True)
    assert f"APP_SECRET_KEY={secret}" in environment.stdout.splitlines()
    image = f"{project.name}:{head[:12]}"
    assert image_members_holding(image, "APP_SECRET_KEY=", tmp_path), "the scan sees the copied .env.example"
    assert image_members_holding(image, secret, tmp_path) == []
    assert secret not in "".join(r.stdout + r.stderr for r in (deployed, backed, refused))
    assert secret not in (prod.srv / "state" / "history.jsonl").read_text()
    assert secret not in (stored / "manifest.json").read_text() + (stored / "SHA256SUMS").read_text()


def test_day_two_tasks_work_on_the_local_test_stack_too(project):
    head = project.head()
    project.inv("deploy.test")
    status = project.inv("deploy.status").stdout
    assert status.startswith("test on local") and f"revision   {head[:12]}" in status
    logs = project.inv("deploy.logs", "--service", "app", "--tail", "5").stdout
    assert 0 < len([line for line in logs.splitlines() if line.strip()]) <= 5
    project.inv("deploy.stop", "--service", "app")
    assert project.containers() == []
    assert f"healthy at revision {head[:12]}" in project.inv("deploy.start").stdout
    assert project.inv("deploy.unlock").stdout.strip() == "no deploy lock on local"


# --- host keys ---------------------------------------------------------------------------------------------------


def test_unknown_host_key_is_refused_and_nothing_runs_on_the_host(prod, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    prod.use(ssh_config=str(strict_alias(prod.sshd, tmp_path / "ssh_config")), known_hosts=str(known))
    result = prod.deploy(check=False)
    assert result.returncode == 1
    [line] = error_lines(result)
    port = prod.sshd.port
    assert line.startswith(f"error: [prod] host key of [127.0.0.1]:{port} is not known (ssh-ed25519 SHA256:")
    assert f"ssh-keyscan -p {port} 127.0.0.1 >> {known}" in line and "--accept-new-host-key" in line
    assert prod.logins() == 0, "refused before logging in"
    assert prod.releases() == [] and not (prod.srv / "state").exists()
    assert known.read_text() == ""


def test_changed_host_key_is_refused_even_with_accept_new(prod, tmp_path):
    wrong = prod.sshd.wrong_known_hosts(tmp_path / "wrong_known_hosts")
    pinned = wrong.read_text()
    prod.use(ssh_config=str(strict_alias(prod.sshd, tmp_path / "ssh_config")), known_hosts=str(wrong))
    result = prod.deploy("--accept-new-host-key", check=False)
    assert result.returncode == 1
    [line] = error_lines(result)
    assert f"host key of [127.0.0.1]:{prod.sshd.port} has CHANGED" in line and "never replaces" in line
    assert wrong.read_text() == pinned
    assert prod.logins() == 0 and prod.releases() == []


def test_accept_new_host_key_records_a_first_seen_key_and_then_trusts_it(prod, tmp_path):
    known = tmp_path / "fresh" / "known_hosts"
    prod.use(ssh_config=str(strict_alias(prod.sshd, tmp_path / "ssh_config")), known_hosts=str(known))
    first = prod.inv("deploy.status", "--host", "prod", "--accept-new-host-key")
    assert "recorded the new host key of" in first.stderr
    assert known.read_text().split() == prod.sshd.known_hosts_line().split()[:3]
    again = prod.inv("deploy.status", "--host", "prod")
    assert "recorded" not in again.stderr and "prod on" in again.stdout

    # Only the flag: in a config file it would accept any key on every fresh machine.
    other = tmp_path / "other" / "known_hosts"
    prod.use(known_hosts=str(other), accept_new_host_key=True)
    refused = prod.inv("deploy.unlock", "--host", "prod", check=False)
    assert refused.returncode == 2
    [line] = error_lines(refused)
    assert "deploy.environments.prod.accept_new_host_key: cannot be set in a config file" in line
    assert "pass --accept-new-host-key on the command line" in line
    assert not other.exists() and prod.logins() == 2


def test_a_revoked_host_key_is_refused_even_with_accept_new_and_a_line_trusting_it(prod, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(prod.sshd.known_hosts_line() + f"@revoked * {prod.sshd.host_key_pub}\n")
    pinned = known.read_text()
    prod.use(ssh_config=str(strict_alias(prod.sshd, tmp_path / "ssh_config")), known_hosts=str(known))
    result = prod.deploy("--accept-new-host-key", check=False)
    assert result.returncode == 1
    [line] = error_lines(result)
    assert line.startswith(f"error: [prod] host key of [127.0.0.1]:{prod.sshd.port} (ssh-ed25519 SHA256:")
    assert f"is REVOKED in {known}; refused, nothing was run" in line
    assert prod.logins() == 0, "refused before logging in"
    assert prod.releases() == [] and not (prod.srv / "state").exists()
    assert known.read_text() == pinned


# --- connection failures: in-process, each one line --------------------------------------------------------------


def _settings(tmp_path: Path, **prod: object) -> config.Settings:
    known = tmp_path / "known_hosts_for_connect"
    known.touch()
    raw = {"app_name": "connect-check", "environments": {"prod": {
        "compose_file": "docker-compose.beta.yml", "remote_dir": str(tmp_path / "nowhere"),
        "known_hosts": str(known), "connect_timeout": 2.0, **prod}}}
    return config.load(raw, "prod", root=REPO)


def _connect_error(settings: config.Settings) -> str:
    with pytest.raises(ConnectError) as info:
        connect(Context(Config()), settings)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_auth_failure_is_one_line_naming_the_key(sshd, tmp_path):
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    alias = strict_alias(sshd, tmp_path / "ssh_config", identity=stranger)
    text = _connect_error(_settings(tmp_path, host="prod", ssh_config=str(alias), known_hosts=str(sshd.known_hosts)))
    assert text.startswith(f"ssh: authentication failed for {sshd.user}@127.0.0.1:{sshd.port} (alias prod) "
                           f"with key(s) {stranger}")
    assert "authorized_keys" in text


def test_refused_connection_is_one_line(sshd, tmp_path):
    closed = free_port()
    alias = strict_alias(sshd, tmp_path / "ssh_config", port=closed)
    text = _connect_error(_settings(tmp_path, host="prod", ssh_config=str(alias)))
    assert text.startswith(f"ssh: cannot connect to {sshd.user}@127.0.0.1:{closed} (alias prod): Connection refused")


def test_unknown_host_name_is_one_line(tmp_path):
    empty = tmp_path / "empty_ssh_config"
    empty.write_text("")
    text = _connect_error(_settings(tmp_path, host="deploy@no-such-host.invalid", ssh_config=str(empty)))
    assert text.startswith("ssh: cannot resolve host 'no-such-host.invalid'")


def test_a_port_that_never_speaks_ssh_times_out_in_one_line(tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel accepts the connection; nobody ever answers
        port = silent.getsockname()[1]
        started = time.monotonic()
        empty = tmp_path / "empty_ssh_config"
        empty.write_text("")
        text = _connect_error(_settings(tmp_path, host=f"deploy@127.0.0.1:{port}", ssh_config=str(empty),
                                        connect_timeout=1.0))
    assert text.startswith(f"ssh: deploy@127.0.0.1:{port} accepted the connection but never spoke SSH")
    assert time.monotonic() - started < 10


def test_missing_ssh_config_file_is_one_line(tmp_path):
    text = _connect_error(_settings(tmp_path, host="prod", ssh_config=str(tmp_path / "absent")))
    assert text.startswith(f"ssh_config file {tmp_path / 'absent'} not found")


def test_the_ssh_target_follows_invokes_dry_flag(sshd, tmp_path):
    settings = _settings(tmp_path, host="prod", ssh_config=str(sshd.ssh_config), known_hosts=str(sshd.known_hosts))
    target = connect(Context(Config(overrides={"run": {"dry": True}})), settings)
    try:
        assert target.dry and target.name == f"{sshd.user}@prod"
        made = tmp_path / "made-by-run"
        target.run(["touch", str(made)])
        assert not made.exists(), "under --dry a changing command is printed, not run"
        assert target.probe(["echo", "read"]).stdout == "read\n", "probes still read the host"
    finally:
        target.close()


def test_a_proxyjump_host_is_verified_like_the_host_itself(sshd, tmp_path):
    alias = strict_alias(sshd, tmp_path / "ssh_config")
    alias.write_text(alias.read_text() + f"Host jumped\n    HostName {sshd.host}\n    Port {sshd.port}\n"
                     f"    User {sshd.user}\n    IdentityFile {sshd.identity}\n    IdentitiesOnly yes\n"
                     f"    ProxyJump {sshd.alias}\n")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    text = _connect_error(_settings(tmp_path, host="jumped", ssh_config=str(alias), known_hosts=str(empty)))
    assert text.startswith(f"[{sshd.alias}] host key of [127.0.0.1]:{sshd.port} is not known"), text

    target = connect(Context(Config()), _settings(tmp_path, host="jumped", ssh_config=str(alias),
                                                  known_hosts=str(sshd.known_hosts)))
    try:
        assert target.probe(["echo", "through the jump host"]).stdout == "through the jump host\n"
    finally:
        target.close()


# --- the lock ----------------------------------------------------------------------------------------------------


def test_second_deploy_is_refused_naming_the_first_and_ctrl_c_releases_the_lock(prod, tmp_path):
    project = prod.project
    dockerfile = project.path / "Dockerfile"
    # A build step that keeps printing, as real builds do, long enough to be interrupted in the middle.
    dockerfile.write_text(dockerfile.read_text() + "\nRUN for i in $(seq 120); do echo building $i; sleep 0.5; done\n")
    head = project.commit("slow build")
    out, err = tmp_path / "first.out", tmp_path / "first.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        # --verbose: the build's output streams, so the test can see it is under way.
        first = subprocess.Popen([str(VENV_BIN / "inv"), "deploy.prod", "--host", "prod", "--verbose"],
                                 cwd=project.path,
                                 env=project.env(), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (prod.lock / "holder.json").exists() or first.poll() is not None, timeout=120)
        assert wait_for(lambda: "building 3" in out.read_text() or first.poll() is not None, timeout=120), \
            err.read_text()[-2000:]
        assert first.poll() is None, err.read_text()[-2000:]
        holder = json.loads((prod.lock / "holder.json").read_text())
        assert holder["pid"] == first.pid

        second = prod.deploy(check=False)
        assert second.returncode == 1
        [line] = error_lines(second)
        assert f"another deploy is running: {holder['holder']} (pid {first.pid}, revision {head[:12]}" in line
        assert "inv deploy.unlock --host prod" in line
        assert len(prod.releases()) == 1, "the refused deploy uploaded nothing"

        interrupted_at = time.monotonic()
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=60) == 130
        assert time.monotonic() - interrupted_at < 20, "Ctrl-C does not wait for the build to finish"
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert "interrupted" in err.read_text() and "Traceback" not in err.read_text()
    assert not prod.lock.exists()
    record = prod.history()[-1]
    assert (record["revision"], record["result"], record["reason"]) == (head, "interrupted", "interrupted by Ctrl-C")
    # The build on the host stopped with its output channel (else it would finish and tag an image later).
    assert wait_for(lambda: _builds_running(project.name) == [], timeout=30), _builds_running(project.name)


def _builds_running(name: str) -> list[str]:
    found = subprocess.run(["pgrep", "-af", f"docker build .*--tag {name}:"], capture_output=True, text=True)
    return found.stdout.splitlines()


def test_failed_build_releases_the_lock_and_records_the_failure(prod):
    project = prod.project
    dockerfile = project.path / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nRUN exit 3\n")
    head = project.commit("broken build")
    result = prod.deploy(check=False)
    assert result.returncode == 1
    [line] = error_lines(result)
    assert "docker build" in line and ("exited 3" in line or "non-zero code: 3" in line)
    assert not prod.lock.exists()
    [record] = prod.history()
    assert (record["revision"], record["result"]) == (head, "failed") and "docker build" in record["reason"]
    assert prod.containers(all_states=True) == []


def test_a_lock_whose_process_is_gone_is_taken_over_and_a_live_ones_needs_force_to_clear(prod):
    gone = subprocess.Popen(["true"])
    gone.wait()
    prod.plant_lock(gone.pid)
    assert "STALE: held by alice@laptop" in prod.inv("deploy.status", "--host", "prod").stdout
    result = prod.deploy()
    assert f"took over the lock of alice@laptop (pid {gone.pid}, revision c0ffeec0ffee" in result.stdout
    assert "whose process is gone" in result.stdout
    assert not prod.lock.exists() and prod.history()[-1]["result"] == "ok"

    prod.plant_lock(os.getpid())  # a holder that is alive: this very process
    refused = prod.inv("deploy.unlock", "--host", "prod", check=False)
    assert refused.returncode == 1
    [line] = error_lines(refused)
    assert f"not clearing the deploy lock of alice@laptop (pid {os.getpid()}" in line
    assert line.endswith("(wait for it to finish; if you are sure it is gone: inv deploy.unlock --host prod --force)")
    assert prod.lock.exists()
    cleared = prod.inv("deploy.unlock", "--host", "prod", "--force").stdout
    assert f"cleared the deploy lock held by alice@laptop (pid {os.getpid()}" in cleared and "forced" in cleared
    assert not prod.lock.exists()


def test_the_heartbeat_shares_the_ssh_connection_with_the_commands_of_the_deploy(sshd, tmp_path):
    settings = _settings(tmp_path, host="prod", ssh_config=str(sshd.ssh_config), known_hosts=str(sshd.known_hosts))
    target = connect(Context(Config()), settings)
    state = tmp_path / "state"
    beat = state / "lock" / "holder.json"
    logins = sshd.log.read_text(errors="replace").count("Accepted publickey")
    try:
        with lock.held(target, str(state), lock.me("a" * 40), "inv deploy.unlock", stale_after=4.0, say=print):
            old = time.time() - 3600
            os.utime(beat, (old, old))

            def refreshed() -> bool:
                target.probe(["sleep", "0.2"])  # the deploy keeps the connection busy meanwhile
                return beat.stat().st_mtime > old + 3000

            assert wait_for(refreshed, timeout=20), "a beat (every second with this bound) reached the host"
        assert not (state / "lock").exists()
    finally:
        target.close()
    assert sshd.log.read_text(errors="replace").count("Accepted publickey") == logins, "no second login"


# --- dry run -----------------------------------------------------------------------------------------------------


def test_dry_run_before_the_first_deploy_plans_it_and_creates_nothing(prod):
    before = _host_state(prod)
    result = prod.inv("--dry", "deploy.prod", "--host", "prod")
    assert f"planned {prod.project.head()[:12]} to prod" in result.stdout
    assert "no release on the host yet" in result.stdout and "not on" in result.stdout
    assert "up --detach" in result.stderr and "docker build" in result.stderr
    assert _host_state(prod) == before


def _host_state(prod: Prod) -> tuple:
    def out(*argv: str) -> list[str]:
        return sorted(subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout.splitlines())

    files = []
    for root, dirs, names in os.walk(prod.srv):
        for entry in [*dirs, *names]:
            path = Path(root, entry)
            st = path.lstat()
            files.append((str(path.relative_to(prod.srv)), st.st_mode, st.st_size, st.st_mtime_ns))
    return (
        out("docker", "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Image}} {{.State}} {{.Names}}",
            "--filter", f"label=com.docker.compose.project={prod.compose}"),
        out("docker", "image", "ls", prod.project.name, "--format", "{{.ID}} {{.Tag}}"),
        sorted(files),
        prod.srv.stat().st_mtime_ns,
    )


def test_dry_run_prints_the_plan_with_its_host_and_changes_nothing(prod):
    project = prod.project
    prod.deploy()
    next_revision = commit_change(project, "next release")
    before = _host_state(prod)

    result = prod.inv("--dry", "deploy.prod", "--host", "prod")
    where = f"[dry-run] [{prod.sshd.user}@prod]"
    printed = result.stderr
    assert f"planned {next_revision[:12]} to prod" in result.stdout
    assert "[dry-run] [local] git archive --format=tar.gz" in printed
    planned = [line for line in printed.splitlines() if line.startswith(where)]
    order = [next((i for i, line in enumerate(planned) if step in line), None)
             for step in (f"take the deploy lock on {prod.sshd.user}@prod", "mkdir -- ", "upload ", "tar -xzf", "mv -T -- /",
                          "docker build", "--scale app=2")]
    assert None not in order and order == sorted(order), planned
    assert _host_state(prod) == before
