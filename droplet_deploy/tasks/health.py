"""`inv health.wait`: poll until the service is healthy and proven to run the expected revision.

Through the public port (no ``--url``), a health answer without a revision is proven by the image label of the
container the proxy routes to; at a ``--url`` no container is known, so such an answer cannot prove a revision
and fails within seconds unless ``--revision any`` asks for none.
"""


from invoke import Collection, task

from droplet_deploy.core import validate
from droplet_deploy.tasks.flags import ENV_HELP, HOST_HELP, clean_errors, number_flag, session_for


@task(help={
    "url": "health URL to poll (default: the environment's public port + health_path)",
    "revision": "revision the service must be proven to run (default: git HEAD; 'any' accepts any healthy answer)",
    "timeout": "seconds before giving up (default: deploy.health_timeout)",
    "interval": "seconds between checks (default: deploy.health_interval, 0.5)",
    "env": ENV_HELP,
    "host": HOST_HELP,
    "allow-dirty": "expect the -dirty revision of an uncommitted work tree",
})
@clean_errors
def wait(c, url=None, revision=None, timeout=None, interval=None, env=None, host=None, allow_dirty=False):
    """Wait until the service answers healthy and is proven to run the expected revision."""
    from droplet_deploy.steps import health as health_mod
    from droplet_deploy.steps import public_route
    from droplet_deploy.steps.revision import current
    timeout = number_flag("timeout", timeout, validate.TIMEOUT)
    interval = number_flag("interval", interval, validate.INTERVAL)
    with session_for(c, env, host) as session:
        settings = session.settings
        timeout = settings.health_timeout if timeout is None else timeout
        interval = settings.health_interval if interval is None else interval
        if revision == "any":
            expected = None
        else:
            head = current(session.local, allow_dirty=True)
            expected = revision or (head.full if allow_dirty else head.sha)
        if url:
            # No container is known there: only a revision in the body can prove it.
            verdict = health_mod.wait(url, expected, mode=settings.health_revision, timeout=timeout,
                                      interval=interval, progress=session.ui.note)
        else:
            snapshot = session.backend.snapshot()
            with public_route.opened(session.target, settings) as base:
                verdict = health_mod.wait(base + settings.health_path, expected, mode=settings.health_revision,
                                          timeout=timeout, interval=interval, progress=session.ui.note,
                                          witness=health_mod.routed(snapshot.apps, snapshot.upstream),
                                          host=settings.probe_host)
        session.ui.line(f"healthy: {verdict.reason}")


ns = Collection("health")
ns.add_task(wait, default=True)
