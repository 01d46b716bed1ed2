"""The task tree. A project's tasks.py imports ``ns`` (or picks the collections it wants) and goes."""

from invoke import Collection

from ..config import DEFAULTS
from . import backup, deploy, health, ops, verify
from .build import build

ns = Collection()
ns.add_task(build)
ns.add_collection(verify.ns)
ns.add_collection(health.ns)
ops.register(deploy.ns)
ns.add_collection(deploy.ns)
ns.add_collection(backup.ns)
ns.configure({"deploy": DEFAULTS})

__all__ = ["ns"]
