"""``droplet-deploy``: what a repository needs before it has a tasks.py of its own, and beside ``inv``.

    droplet-deploy init       set the repository up for deploys (invoke.yaml, tasks.py, .gitignore)
    droplet-deploy doctor     every check a deploy makes, changing nothing
    droplet-deploy notify     the post_deploy chat notification (DEPLOY_WEBHOOK_URL)
    droplet-deploy --version

``python -m droplet_deploy`` is the same command.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata

from invoke import Collection, Program, task

from droplet_deploy import notify as notify_mod
from droplet_deploy.core.config_keys import DEFAULTS
from droplet_deploy.tasks.doctor import doctor
from droplet_deploy.tasks.init import init

NAME = "droplet-deploy"


def version() -> str:
    """The installed distribution's version; a checkout that was never installed says so."""
    try:
        return metadata.version(NAME)
    except metadata.PackageNotFoundError:
        return "0+unknown (not installed: pip install -e .)"


@task
def notify(c):
    """POST the deploy's result (DEPLOY_* variables) to DEPLOY_WEBHOOK_URL; nothing without it."""
    status = notify_mod.main()
    if status:
        sys.exit(status)


class _Program(Program):
    """Invoke's program reading the project's invoke.yaml from the working directory, as ``inv`` does (given a
    namespace, Invoke loads no project config of its own)."""

    def parse_collection(self) -> None:
        super().parse_collection()
        self.config.set_project_location(os.getcwd())
        self.config.load_project()


namespace = Collection(init, doctor, notify)
namespace.configure({"deploy": DEFAULTS})
program = _Program(namespace=namespace, name=NAME, binary=NAME, version=version())


def main() -> None:
    program.run()
