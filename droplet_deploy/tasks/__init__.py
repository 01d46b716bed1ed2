"""The task tree. A project's tasks.py imports ``ns`` (or picks the collections it wants) and goes."""

from invoke import Collection

from droplet_deploy.core.config_keys import DEFAULTS
from droplet_deploy.tasks import backup, config_errors, deploy, health, verify
from droplet_deploy.tasks import day_two as ops
from droplet_deploy.tasks import front as front_tasks
from droplet_deploy.tasks.build import build
from droplet_deploy.tasks.doctor import doctor
from droplet_deploy.tasks.init import init

config_errors.install()

ns = Collection()
ns.add_task(build)
ns.add_task(init)
ns.add_task(doctor)
ns.add_collection(verify.ns)
ns.add_collection(health.ns)
ops.register(deploy.ns)
front_tasks.register(deploy.ns)
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
