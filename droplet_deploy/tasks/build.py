"""`inv build`: the image for HEAD, tagged <app>:<sha12> and labelled with the full revision."""

from invoke import task

from droplet_deploy.tasks.flags import ENV_HELP, HOST_HELP, VERBOSE_HELP, clean_errors, session_for


@task(help={
    "env": ENV_HELP,
    "host": HOST_HELP,
    "no-cache": "build every layer from scratch (the layer cache is safe: verify.build proves freshness)",
    "allow-dirty": "build uncommitted changes; the revision then ends in -dirty",
    "verbose": VERBOSE_HELP,
})
@clean_errors
def build(c, env=None, host=None, no_cache=False, allow_dirty=False, verbose=False):
    """Build the app image, and every other service's with a build of its own, for the current git revision."""
    from droplet_deploy.pipeline.service_images import build_all
    from droplet_deploy.steps.build import build_image
    from droplet_deploy.steps.revision import current
    with session_for(c, env, host, verbose=verbose) as session:
        revision = current(session.local, allow_dirty=allow_dirty)
        if session.backend.ships_release:
            with session.ui.step("release"):
                session.backend.prepare_release(revision)
        with session.ui.step("build", session.settings.image(revision.tag)), session.ui.live("building") as live:
            image = build_image(session.target, session.settings, revision, no_cache=no_cache, progress=live.feed)
        others = [image for _, image in build_all(session, revision, no_cache=no_cache)]
        session.ui.line(f"built {', '.join([image, *others])} (revision {revision.full})")
