"""`inv init`: set an existing repository up for deploys (before it has a tasks.py: `python -m deploy init`)."""

from __future__ import annotations

import os
from pathlib import Path

from invoke import task

from droplet_deploy.commands import git
from droplet_deploy.core.errors import InitError
from droplet_deploy.tasks.flags import clean_errors


@task(help={
    "service": "the compose service that runs the app, when init cannot tell",
    "force": "rewrite the deploy section of invoke.yaml and tasks.py even if they exist",
})
@clean_errors
def init(c, service=None, force=False):
    """Detect the Dockerfile, compose file, app service, port and health route; write invoke.yaml and tasks.py."""
    from droplet_deploy.setup import init as init_mod
    from droplet_deploy.setup.running import Running
    from droplet_deploy.transport.target import LocalTarget
    root = Path(os.getcwd())
    local = LocalTarget(c, str(root))
    if not local.probe(git.toplevel()).ok:
        raise InitError(f"{root} is not in a git repository",
                        hint="deploys ship commits: `git init`, commit the app, then run init again")
    init_mod.run(root, service=service or None, force=force, write=local.write_text, say=print,
                 running=Running(local.probe))
