"""`init`, then `inv deploy.test`, on three apps nobody here wrote (tests/support/thirdparty.py: Flask's tutorial
blog, a Django `startproject` with ALLOWED_HOSTS from the environment, FastAPI's first steps), with no edit beyond
the Dockerfile lines init prints. Real engine, real compose, their dependencies from wheels."""

from __future__ import annotations

import subprocess
import uuid

import pytest
import requests
import yaml

from tests.conftest import PROXY_IMAGE, VENV_BIN, Project, free_port, git, remove_project_resources
from tests.support import thirdparty as tp

pytestmark = pytest.mark.integration


@pytest.fixture
def third_party(request, tmp_path):
    name = f"dt{uuid.uuid4().hex[:8]}"
    app = tp.assemble(request.param, tmp_path / name, port=free_port(),
                      container_name=f"{name}-app" if tp.SPECS[request.param].container_name else None)
    project = Project(app.path, name, free_port(), tmp_path / "invoke-runtime.yaml")
    # What this machine needs (its offline proxy image) and a free port and project name: the rest is init's.
    project.configure(proxy_image=PROXY_IMAGE,
                      environments={"test": {"project": f"{name}-test", "public_port": project.port}})
    yield app, project
    remove_project_resources(name)


def dockerfile_lines(stdout: str) -> list[str]:
    """The lines init says to add to the Dockerfile: the indented ones after `add to the final stage of`."""
    lines = stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("add to the final stage of")), None)
    if start is None:
        return []
    found = []
    for line in lines[start + 1:]:
        if not line.startswith("    "):
            break
        found.append(line.strip())
    return found


@pytest.mark.parametrize("third_party", tp.APPS, indirect=True)
def test_init_then_deploy_test_passes_with_only_the_printed_dockerfile_lines(third_party):
    app, project = third_party
    result = subprocess.run([str(VENV_BIN / "droplet-deploy"), "init"], cwd=project.path, env=project.env(),
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert f"health {app.spec.health_path}" in result.stdout, result.stdout
    written = yaml.safe_load((project.path / "invoke.yaml").read_text())["deploy"]
    assert written["check_command"][:2] == ["python3", "-c"], "a check that imports this framework's app"
    assert ".env" in (project.path / ".dockerignore").read_text().split()
    assert written["environments"]["prod"]["env_file"] == ".env", "the compose file reads .env"

    added = dockerfile_lines(result.stdout)
    assert added and all(line.split()[0] in ("ARG", "LABEL", "ENV", "USER") for line in added), result.stdout
    dockerfile = project.path / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().rstrip("\n") + "\n" + "\n".join(added) + "\n")
    git(project.path, "add", "-A")
    git(project.path, "commit", "-q", "-m", "deploy settings from init, and the revision lines it printed")

    dry = project.inv("--dry", "deploy.test")
    assert dry.returncode == 0
    deployed = project.inv("deploy.test")
    assert f"deployed {project.head()[:12]} to test" in deployed.stdout
    assert "app imports" in deployed.stdout and "routes" in deployed.stdout
    answer = requests.get(project.url + app.spec.health_path, headers={"Host": "localhost"}, timeout=10)
    assert answer.status_code == 200
