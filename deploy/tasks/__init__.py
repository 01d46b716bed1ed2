"""The task tree. A project's tasks.py imports ``ns`` (or picks the collections it wants) and goes."""

from invoke import Collection

from ..config import DEFAULTS
from . import backup, config_errors, deploy, health, ops, verify
from .build import build
from .init import init

config_errors.install()

ns = Collection()
ns.add_task(build)
ns.add_task(init)
ns.add_collection(verify.ns)
ns.add_collection(health.ns)
ops.register(deploy.ns)
ns.add_collection(deploy.ns)
ns.add_collection(backup.ns)
ns.configure({"deploy": DEFAULTS})


def _long_flags_only(collection: Collection) -> None:
    # Invoke would derive -h from --host and --health-timeout, shadowing -h for help; long flags read
    # better in runbooks anyway.
    for task in collection.tasks.values():
        task.auto_shortflags = False
    for sub in collection.collections.values():
        _long_flags_only(sub)


_long_flags_only(ns)

__all__ = ["ns"]
