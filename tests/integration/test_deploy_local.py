"""`inv deploy.test` and its steps on the real Docker engine, run as users run them (the `inv` command)."""

import subprocess
import uuid

import pytest

from tests.support.secrets import image_members_holding

pytestmark = pytest.mark.integration


def test_deploy_from_scratch_serves_head_then_a_code_change(project):
    first = project.head()
    result = project.inv("deploy.test")
    assert f"deployed {first[:12]} to test" in result.stdout
    for step in ("==> preflight", "==> build", "==> verify.build", "==> rollout"):
        assert step in result.stdout
    answer = project.health()
    assert (answer["status"], answer["revision"]) == ("healthy", first)
    (old_container,) = project.containers()

    # A one-line code change: the new container must serve the new code, not a cached copy.
    index = project.path / "app" / "routes.py"
    assert index.exists(), "the reference app keeps its handlers in app/routes.py"
    index.write_text(index.read_text() + "\nDEPLOY_MARKER = 'second release'\n")
    second = project.commit("second release")
    project.inv("deploy.test")
    assert project.health()["revision"] == second
    containers = project.containers()
    assert len(containers) == 1 and containers != [old_container], "the old container drained and went"
    shown = subprocess.run(["docker", "exec", containers[0], "grep", "-c", "DEPLOY_MARKER",
                            "/srv/app/routes.py"], capture_output=True, text=True)
    assert shown.stdout.strip() == "1", "the running container holds the new code"


def test_stale_bytecode_in_the_build_context_never_reaches_the_image(project):
    # Ignored by git, so the tree is clean, but present in the build context: .dockerignore and the
    # clean-up step must keep them out.
    (project.path / "app" / "__pycache__").mkdir(exist_ok=True)
    (project.path / "app" / "__pycache__" / "routes.cpython-311.pyc").write_bytes(b"\x00stale")
    (project.path / "app" / "stale.pyc").write_bytes(b"\x00stale")
    assert subprocess.run(["git", "status", "--porcelain"], cwd=project.path, capture_output=True,
                          text=True).stdout == ""
    result = project.inv("build", "verify.build")
    assert "PASS  no bytecode" in result.stdout
    image = f"{project.name}:{project.head()[:12]}"
    found = subprocess.run(["docker", "run", "--rm", "--entrypoint", "find", image, "/srv", "-name", "*.pyc",
                            "-o", "-name", "__pycache__"], capture_output=True, text=True, check=True)
    assert found.stdout == ""


def test_verify_build_fails_on_an_image_holding_bytecode(project, tmp_path):
    project.inv("build")
    good = f"{project.name}:{project.head()[:12]}"
    bad = f"{project.name}:with-pyc"
    dockerfile = tmp_path / "bad.Dockerfile"
    dockerfile.write_text(f"FROM {good}\nUSER 0\nRUN mkdir -p /srv/app/__pycache__ && "
                          "touch /srv/app/__pycache__/routes.cpython-311.pyc\nUSER 10001\n")
    subprocess.run(["docker", "build", "-q", "-t", bad, "-f", str(dockerfile), str(tmp_path)], check=True,
                   capture_output=True)
    result = project.inv("verify.build", "--image", bad, check=False)
    assert result.returncode == 1
    assert "FAIL  no bytecode" in result.stdout
    assert "failed 1 check(s): no bytecode" in result.stderr
    assert "Traceback" not in result.stderr


def test_dirty_tree_is_refused_unless_allowed(project):
    project.write("app/extra.txt", "uncommitted\n")
    refused = project.inv("build", check=False)
    assert refused.returncode == 1
    assert "uncommitted change" in refused.stderr and "--allow-dirty" in refused.stderr
    allowed = project.inv("build", "--allow-dirty")
    assert f"{project.head()[:12]}-dirty" in allowed.stdout


def test_failed_build_leaves_the_running_release_untouched(project):
    project.inv("deploy.test")
    before = project.containers()
    serving = project.health()["revision"]
    dockerfile = project.path / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nRUN exit 3\n")
    project.commit("broken build")
    result = project.inv("deploy.test", check=False)
    assert result.returncode == 1
    assert "exited 3" in result.stderr or "returned a non-zero code: 3" in result.stderr
    assert project.containers() == before
    assert project.health()["revision"] == serving


def test_a_release_that_fails_verify_never_starts_and_leaves_no_container_behind(project):
    """The new app container is created while verify.build runs (a start is then all the rollout waits for):
    created is not started, and a failed verify removes it."""
    project.inv("deploy.test")
    before, serving = project.containers(), project.health()["revision"]
    dockerfile = project.path / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\nUSER 0\nRUN mkdir -p /srv/app/__pycache__ && "
                          "touch /srv/app/__pycache__/stale.cpython-311.pyc\nUSER 10001\n")
    project.commit("a release holding bytecode")
    since = subprocess.run(["docker", "system", "info", "--format", "{{.SystemTime}}"], capture_output=True,
                           text=True, check=True).stdout.strip()
    result = project.inv("deploy.test", check=False)
    assert result.returncode == 1 and "FAIL  no bytecode" in result.stdout
    assert "created for this release and never started" in result.stdout
    until = subprocess.run(["docker", "system", "info", "--format", "{{.SystemTime}}"], capture_output=True,
                           text=True, check=True).stdout.strip()
    events = subprocess.run(["docker", "events", "--since", since, "--until", until, "--format",
                             "{{.Action}} {{.Actor.Attributes.name}}", "--filter", "type=container", "--filter",
                             f"label=com.docker.compose.project={project.compose_project()}"],
                            capture_output=True, text=True, check=True, timeout=30).stdout.split("\n")
    actions = {line.split()[0] for line in events if line.strip()}
    assert "create" in actions, f"the new container is created beside verify.build: {events}"
    assert not actions & {"start", "restart"}, f"nothing of the stack started: {events}"
    assert "destroy" in actions, f"and the created one is removed: {events}"
    everything = subprocess.run(["docker", "ps", "-aq", "--no-trunc", "--filter",
                                 f"label=com.docker.compose.project={project.compose_project()}", "--filter",
                                 "label=com.docker.compose.service=app"], capture_output=True, text=True,
                                check=True).stdout.split()
    assert everything == before, "no container left, created or running, beside the one serving"
    assert project.health()["revision"] == serving


def test_bad_config_is_one_line_and_changes_nothing(project):
    project.configure(environments={"test": {"public_port": "eighty"}})
    result = project.inv("deploy.test", check=False)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: config error: deploy.environments.test.public_port: must be an integer, got string "
                     "'eighty' (set deploy.environments.test.public_port to an integer)"]
    assert project.containers() == []


def _docker_state(project):
    def out(*argv):
        return subprocess.run(list(argv), capture_output=True, text=True, check=True).stdout

    return (out("docker", "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Image}} {{.Status}}",
                "--filter", f"label=com.docker.compose.project={project.compose_project()}").splitlines(),
            sorted(out("docker", "image", "ls", project.name, "--format", "{{.ID}} {{.Tag}}").splitlines()))


def test_dry_run_prints_the_plan_and_changes_nothing(project):
    project.inv("deploy.test")
    history = project.path / ".deploy" / "test" / "history.jsonl"
    lines_before = history.read_text()
    index = project.path / "app" / "routes.py"
    index.write_text(index.read_text() + "\n# next release\n")
    project.commit("next release")
    before = _docker_state(project)

    result = project.inv("--dry", "deploy.test")
    printed = result.stderr
    assert "[dry-run] [local] docker build" in printed
    assert "--scale app=2" in printed, "the plan starts the new container beside the running one"
    assert "[dry-run] [local] take the deploy lock on local" in printed, "the lock is part of the plan, in words"
    assert "[dry-run] [local] release the deploy lock on local" in printed
    assert "holder.json" not in printed, "the lock's plumbing is not shown"
    assert f"planned {project.head()[:12]} to test" in result.stdout
    time_sensitive = [line.split(" Up ")[0] for line in before[0]]
    after = _docker_state(project)
    assert [line.split(" Up ")[0] for line in after[0]] == time_sensitive
    assert after[1] == before[1]
    assert history.read_text() == lines_before
    assert not (project.path / ".deploy" / "test" / "lock").exists()


def test_tasks_compose_on_one_command_line(project):
    result = project.inv("build", "verify.build")
    assert "==> build" in result.stdout and "verified" in result.stdout
    project.inv("deploy.test")
    waited = project.inv("health.wait", "--timeout", "5")
    assert f"healthy at revision {project.head()[:12]}" in waited.stdout


def test_a_public_port_taken_by_another_process_stops_the_deploy_before_anything_starts(project):
    import socket

    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", project.port))
        squatter.listen(1)
        result = project.inv("deploy.test", check=False)
    assert result.returncode == 1
    assert f"preflight: public port: {project.port} is already in use by another process" in result.stderr
    assert "Traceback" not in result.stderr
    assert project.containers() == [] and project.containers(service="proxy") == []


def test_the_env_file_reaches_the_running_container_and_no_image_output_history_or_manifest(project, tmp_path):
    secret = f"marker-{uuid.uuid4().hex}"  # made here, so no shipped file (these tests included) can hold it
    project.write(".env", f"APP_SECRET_KEY={secret}\n")  # git ignores it: the tree stays clean
    project.configure(environments={"test": {"env_file": ".env"}})
    deployed = project.inv("deploy.test")
    verified = project.inv("verify.build")
    backed = project.inv("backup")

    [container] = project.containers()
    environment = subprocess.run(["docker", "exec", container, "env"], capture_output=True, text=True, check=True)
    assert f"APP_SECRET_KEY={secret}" in environment.stdout.splitlines(), "compose read it by its absolute path"
    image = f"{project.name}:{project.head()[:12]}"
    assert image_members_holding(image, project.head(), tmp_path), "the scan sees the revision label"
    assert image_members_holding(image, secret, tmp_path) == []
    assert secret not in "".join(r.stdout + r.stderr for r in (deployed, verified, backed))
    assert secret not in (project.path / ".deploy" / "test" / "history.jsonl").read_text()
    [manifest] = (project.path / "backups" / "test").glob("*/manifest.json")
    assert secret not in manifest.read_text() + (manifest.parent / "SHA256SUMS").read_text()
    assert (manifest.parent / "config" / ".env").stat().st_mode & 0o777 == 0o600
