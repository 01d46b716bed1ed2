"""Automatic and manual rollback on the real engine, through the `inv` command as users run it.

A bad release must leave the site exactly as it was: the same old container serving the old revision, the new
one gone, a `failed` history line with the reason, and one error line saying what failed and what still serves.
"""

import subprocess

import pytest

from tests.conftest import load_json_lines
from tests.support import releases

pytestmark = pytest.mark.integration


def _history(project) -> list[dict]:
    return load_json_lines((project.path / ".deploy" / "test" / "history.jsonl").read_text())


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _every_app_container(project) -> list[str]:
    """Running or not: a bad release must not leave a stopped container behind either."""
    out = subprocess.run(["docker", "ps", "-aq", "--no-trunc", "--filter",
                          f"label=com.docker.compose.project={project.compose_project()}", "--filter",
                          "label=com.docker.compose.service=app"], capture_output=True, text=True, check=True)
    return out.stdout.split()


def _app_images(project) -> dict[str, str]:
    out = subprocess.run(["docker", "image", "ls", project.name, "--format", "{{.Tag}} {{.ID}}"],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


# (make the release, how the rollout reports it, the reason it must give)
BAD_RELEASES = [
    (releases.unhealthy, "new release never became healthy", "HTTP 503, status 'unhealthy'"),
    (releases.wrong_revision, "new release never became healthy", "still serving revision 0000000stale"),
    (releases.failing_endpoint, "new release failed after the switch", "post-deploy checks failed: /: HTTP 500"),
]


def test_a_bad_release_is_removed_and_the_old_one_keeps_serving(project):
    project.configure(check_endpoints=["/api/health", "/"])
    good = project.head()
    project.inv("deploy.test")
    (serving,) = project.containers()
    container_name = subprocess.run(["docker", "inspect", "--format", "{{.Name}}", serving], capture_output=True,
                                    text=True, check=True).stdout.strip().lstrip("/")

    # One stack for all three kinds of failure: CI has two cores, and each case starts from the same state.
    for make, stage, why in BAD_RELEASES:
        bad = make(project)
        result = project.inv("deploy.test", "--health-timeout", "5", check=False)

        assert result.returncode == 1, result.stdout
        assert "Traceback" not in result.stderr
        (error,) = _error_lines(result)
        assert error.startswith(f"error: {stage}: "), error
        assert why in error
        assert error.endswith(f"{container_name} still serving revision {good[:12]}"), error
        assert _every_app_container(project) == [serving], "the new container was removed, the old one kept"
        assert project.health()["revision"] == good
        last = _history(project)[-1]
        assert (last["action"], last["result"], last["revision"]) == ("deploy", "failed", bad)
        assert why in last["reason"]

        releases.restore(project, good)


def test_rollback_uses_the_kept_image_and_pruned_ones_are_refused_clearly(project):
    project.configure(keep_images=2)
    first = project.head()
    project.inv("deploy.test")
    second = releases.one_line_change(project, "second")
    project.inv("deploy.test")
    third = releases.one_line_change(project, "third")
    project.inv("deploy.test")

    # After a successful deploy only the newest keep_images images of the app remain.
    kept = _app_images(project)
    assert set(kept) == {second[:12], third[:12]}

    result = project.inv("deploy.rollback")
    assert f"rolled back to {second[:12]} on test" in result.stdout
    assert "==> build" not in result.stdout and "docker build" not in result.stderr, "a rollback never rebuilds"
    assert project.health()["revision"] == second
    assert _app_images(project) == kept
    last = _history(project)[-1]
    assert (last["action"], last["result"], last["revision"]) == ("rollback", "ok", second)
    (serving,) = project.containers()

    refused = project.inv("deploy.rollback", "--to", first[:9], check=False)
    assert refused.returncode == 1
    assert _error_lines(refused) == [
        f"error: image {project.name}:{first[:12]} of revision {first[:12]} is no longer kept (pruned); "
        f"kept revisions: {third[:12]}, {second[:12]} (serving) (roll back to one of them with --to REV; "
        f"deploy.keep_images keeps the newest 2)"]
    assert project.containers() == [serving]
    assert len(_history(project)) == 4, "a refused rollback changes nothing, history included"

    # Rolling back again returns to the release the first rollback left, like `cd -`.
    project.inv("deploy.rollback")
    assert project.health()["revision"] == third

    # A stack taken down by hand has no "previous"; a named release still comes back, although the proxy's
    # upstream file (kept in its volume) names a container that no longer exists.
    subprocess.run(["docker", "compose", "--project-name", project.compose_project(), "--file",
                    "docker-compose.test.yml", "down"], cwd=project.path, env=project.env(PUBLIC_PORT=str(project.port)),
                   check=True, capture_output=True)
    refused = project.inv("deploy.rollback", check=False)
    assert refused.returncode == 1 and "no app container is running" in _error_lines(refused)[0]
    project.inv("deploy.rollback", "--to", second[:12])
    assert project.health()["revision"] == second
