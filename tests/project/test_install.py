"""Installing the toolkit from a checkout (`pip install /path/to/droplet-deploy`, as the README says) builds in
that checkout: `build/` and `*.egg-info`. The checkout must stay clean in git's eyes, or the next deploy from it
refuses (or tags the release -dirty)."""

from __future__ import annotations

import sys
import zipfile

import tomllib
from invoke import Context

from droplet_deploy.steps.revision import current
from droplet_deploy.transport.target import LocalTarget
from tests.conftest import make_project

from .helpers import output, run


def test_building_the_package_in_a_checkout_leaves_it_clean_to_deploy(tmp_path):
    project = make_project(tmp_path)
    # pip hands the build to setuptools in the source tree; the same setuptools commands, run here, need no
    # package index (pip's isolated build would download setuptools first).
    built = run([sys.executable, "-c", "from setuptools import setup; setup()", "-q", "egg_info", "build"],
                cwd=project.path)
    assert built.returncode == 0, output(built)
    assert (project.path / "build" / "lib" / "droplet_deploy" / "steps" / "revision.py").is_file(), "the build wrote build/"
    assert list(project.path.glob("*.egg-info")), "the build wrote its egg-info"

    revision = current(LocalTarget(Context(), str(project.path)))  # raises GitError on a dirty tree
    assert revision.sha == project.head() and not revision.dirty


def test_the_wheel_installs_into_a_fresh_venv_beside_a_users_own_deploy_py(tmp_path):
    """Built from a clean copy of the checkout, installed from PyPI's dependencies (reachable here and in CI) into
    a new virtualenv, and used from a project directory that has a ``deploy.py`` of its own: ``inv --list`` loads
    the tasks through their own import name, and the console script knows its version."""
    (tmp_path / "src").mkdir()
    source = make_project(tmp_path / "src").path
    wheels = tmp_path / "wheels"
    built = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(source)],
                cwd=tmp_path, timeout=600)
    assert built.returncode == 0, output(built)
    [wheel] = list(wheels.glob("droplet_deploy-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"droplet_deploy/py.typed", "droplet_deploy/notify.py"} <= names
    assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in names)

    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    assert made.returncode == 0, output(made)
    installed = run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], cwd=tmp_path, timeout=900)
    assert installed.returncode == 0, output(installed)

    user = tmp_path / "users-app"
    user.mkdir()
    (user / "deploy.py").write_text('print("the user\'s own deploy script")\n')
    (user / "tasks.py").write_text("from droplet_deploy.tasks import ns\n")
    listed = run([str(venv / "bin" / "inv"), "--list"], cwd=user)
    assert listed.returncode == 0, output(listed)
    assert "deploy.prod" in listed.stdout and "doctor" in listed.stdout
    assert "the user's own deploy script" not in listed.stdout
    version = run([str(venv / "bin" / "droplet-deploy"), "--version"], cwd=user)
    declared = tomllib.loads((source / "pyproject.toml").read_text())["project"]["version"]
    assert version.returncode == 0 and version.stdout.strip() == f"droplet-deploy {declared}", output(version)
