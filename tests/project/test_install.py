"""Installing the toolkit from a checkout (`pip install /path/to/droplet-deploy`, as the README says) builds in
that checkout: `build/` and `*.egg-info`. The checkout must stay clean in git's eyes, or the next deploy from it
refuses (or tags the release -dirty)."""

from __future__ import annotations

import sys

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
