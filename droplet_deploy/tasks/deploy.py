"""`inv deploy.*`: the pipeline per environment, plus the day-two tasks around it."""

from invoke import Collection, task

from droplet_deploy.core import validate
from droplet_deploy.tasks.flags import (
    ACCEPT_NEW_HELP,
    ENV_HELP,
    HOST_HELP,
    VERBOSE_HELP,
    clean_errors,
    number_flag,
    session_for,
)

PIPELINE_HELP = {
    "verbose": VERBOSE_HELP,
    "allow-dirty": "deploy uncommitted changes (the revision ends in -dirty)",
    "no-cache": "build every layer from scratch",
    "health-timeout": "seconds the new container gets to report healthy (default: deploy.health_timeout)",
}
REMOTE_HELP = {"host": HOST_HELP, "accept-new-host-key": ACCEPT_NEW_HELP}


def _run(c, env, host=None, skip_backup=False, **flags):
    from droplet_deploy.pipeline import deploy as pipeline
    options = pipeline.Options(
        allow_dirty=flags.get("allow_dirty", False),
        no_cache=flags.get("no_cache", False),
        skip_backup=skip_backup,
        health_timeout=number_flag("health-timeout", flags.get("health_timeout"), validate.TIMEOUT),
    )
    with session_for(c, env, host, accept_new_host_key=flags.get("accept_new_host_key", False),
                     verbose=flags.get("verbose", False)) as session:
        pipeline.deploy(session, options)


@task(help=PIPELINE_HELP)
@clean_errors
def test(c, allow_dirty=False, no_cache=False, health_timeout=None, verbose=False):
    """Deploy HEAD to the local test environment with the production pipeline."""
    _run(c, "test", allow_dirty=allow_dirty, no_cache=no_cache, health_timeout=health_timeout, verbose=verbose)


@task(help={**PIPELINE_HELP, **REMOTE_HELP, "skip-backup": "deploy without the pre-deploy backup (recorded)"})
@clean_errors
def prod(c, host=None, allow_dirty=False, no_cache=False, health_timeout=None, skip_backup=False,
         accept_new_host_key=False, verbose=False):
    """Deploy HEAD to production over SSH: backup, build, verify, zero-downtime rollout."""
    _run(c, "prod", host, skip_backup=skip_backup, allow_dirty=allow_dirty, no_cache=no_cache,
         health_timeout=health_timeout, accept_new_host_key=accept_new_host_key, verbose=verbose)


@task(name="env", help={**PIPELINE_HELP, **REMOTE_HELP, "env": "the environment to deploy, from deploy.environments",
                        "skip-backup": "deploy without the pre-deploy backup (recorded)"})
@clean_errors
def to_env(c, env, host=None, allow_dirty=False, no_cache=False, health_timeout=None, skip_backup=False,
           accept_new_host_key=False, verbose=False):
    """Deploy HEAD to any configured environment by name."""
    _run(c, env, host, skip_backup=skip_backup, allow_dirty=allow_dirty, no_cache=no_cache,
         health_timeout=health_timeout, accept_new_host_key=accept_new_host_key, verbose=verbose)


@task(help={
    "to": "revision (or unique prefix) from the release history to go back to (default: the previous release)",
    "with-data": "also restore the backup taken before the serving release went in (after backing up the current "
                 "state)",
    "env": ENV_HELP,
    **REMOTE_HELP,
    "health-timeout": PIPELINE_HELP["health-timeout"],
    "verbose": VERBOSE_HELP,
})
@clean_errors
def rollback(c, to=None, with_data=False, env=None, host=None, health_timeout=None, accept_new_host_key=False,
             verbose=False):
    """Go back to the previous release (or --to REV): its kept image, compose file, override and env file."""
    from droplet_deploy.pipeline import rollback as rollback_mod
    timeout = number_flag("health-timeout", health_timeout, validate.TIMEOUT)
    with session_for(c, env, host, accept_new_host_key=accept_new_host_key, verbose=verbose) as session:
        rollback_mod.rollback(session, to=to, health_timeout=timeout, with_data=with_data)


ns = Collection("deploy")
ns.add_task(test)
ns.add_task(prod)
ns.add_task(to_env, name="env")
ns.add_task(rollback)
