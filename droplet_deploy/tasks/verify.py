"""`inv verify.build`: prove the image holds exactly this commit and nothing stale."""

from invoke import Collection, task

from droplet_deploy.tasks.flags import ENV_HELP, HOST_HELP, clean_errors, session_for


@task(name="build", help={
    "env": ENV_HELP,
    "host": HOST_HELP,
    "image": "image to check (default: <app>:<sha12> of HEAD)",
    "allow-dirty": "check the -dirty image of an uncommitted work tree",
})
@clean_errors
def build_(c, env=None, host=None, image=None, allow_dirty=False):
    """Check the built image: revision label, no bytecode, app imports, non-root, no .env inside."""
    from droplet_deploy.pipeline.deploy import verify_step
    from droplet_deploy.steps.revision import Revision, current
    with session_for(c, env, host) as session:
        revision: Revision = current(session.local, allow_dirty=allow_dirty)
        image = image or session.settings.image(revision.tag)
        with session.ui.step("verify.build", image):
            verify_step(session, image, revision)
        session.ui.line(f"verified {image}: holds revision {revision.full} and nothing stale")


ns = Collection("verify")
ns.add_task(build_, name="build", default=True)
