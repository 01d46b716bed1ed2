"""`inv deploy.maintenance|live`: one environment's names answered by the front proxy's 503 page, or served again."""

from __future__ import annotations

from invoke import Collection, task

from droplet_deploy.tasks.flags import ACCEPT_NEW_HELP, ENV_HELP, HOST_HELP, clean_errors, session_for

WHERE = {"env": ENV_HELP, "host": HOST_HELP, "accept-new-host-key": ACCEPT_NEW_HELP}


@task(help={**WHERE, "message": "the sentence the 503 page shows (default: down for maintenance, back shortly)"})
@clean_errors
def maintenance(c, message=None, env=None, host=None, accept_new_host_key=False):
    """Answer this environment's host names with a 503 page and Retry-After; other environments are untouched."""
    from droplet_deploy.operations import maintenance as maintenance_ops

    with session_for(c, env, host, accept_new_host_key=accept_new_host_key) as session:
        session.ui.line(maintenance_ops.switch(session, on=True, message=message))


@task(help=WHERE)
@clean_errors
def live(c, env=None, host=None, accept_new_host_key=False):
    """End maintenance: the front proxy routes this environment's host names to its app again."""
    from droplet_deploy.operations import maintenance as maintenance_ops

    with session_for(c, env, host, accept_new_host_key=accept_new_host_key) as session:
        session.ui.line(maintenance_ops.switch(session, on=False))


def register(collection: Collection) -> None:
    collection.add_task(maintenance)
    collection.add_task(live)
