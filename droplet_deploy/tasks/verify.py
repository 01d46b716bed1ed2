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
    """Check the built images (the app's, and each service's built of its own): revision label, no bytecode, app
    imports, non-root, no .env inside."""
    from droplet_deploy.pipeline import service_images
    from droplet_deploy.pipeline.deploy import verify_step
    from droplet_deploy.steps.revision import Revision, current
    with session_for(c, env, host) as session:
        revision: Revision = current(session.local, allow_dirty=allow_dirty)
        given = image is not None  # one image named: only it is checked
        image = image or session.settings.image(revision.tag)
        with session.ui.step("verify.build", image):
            verify_step(session, image, revision)
        others = [] if given else service_images.planned(session, revision)
        service_images.verify_all(session, others, revision)
        shown = ", ".join([image, *(i for _, i in others)])
        session.ui.line(f"verified {shown}: holds revision {revision.full} and nothing stale")


ns = Collection("verify")
ns.add_task(build_, name="build", default=True)
