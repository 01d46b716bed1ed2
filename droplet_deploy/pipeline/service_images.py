"""The build and verify.build of every service besides the app with a ``build:`` of its own, at the release's
revision: each tagged ``<app>-<service>:<sha12>``, each checked before anything running is touched."""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.session import Session
from droplet_deploy.steps.build import ServiceBuild, build_service, service_image
from droplet_deploy.steps.revision import Revision
from droplet_deploy.steps.verify import verify_service_image


def build_all(session: Session, revision: Revision, *, no_cache: bool = False) -> list[tuple[ServiceBuild, str]]:
    """Each service's image, built in the compose file's order; with the image each got."""
    ui, built = session.ui, []
    for service in session.backend.built_services():
        image = service_image(session.settings, service.service, revision.tag)
        with ui.step("build", f"{service.service}: {image}"), ui.live(f"building {service.service}") as live:
            built.append((service, build_service(session.target, session.settings, revision, service,
                                                 no_cache=no_cache, progress=live.feed)))
    return built


def verify_all(session: Session, built: Sequence[tuple[ServiceBuild, str]], revision: Revision) -> None:
    ui = session.ui
    for service, image in built:
        with ui.step("verify.build", f"{service.service}: {image}"):
            if session.target.dry:
                ui.line(f"[dry-run] [{session.where}] verify {image}: revision label, non-root user, no .env "
                        "inside, no bytecode (a Python image)")
                continue
            verify_service_image(session.target, session.settings, service.service, image, revision.full,
                                 report=lambda check: ui.check(check.ok, check.name, check.detail))


def planned(session: Session, revision: Revision) -> list[tuple[ServiceBuild, str]]:
    """The services' images of ``revision`` as ``build_all`` tags them, for a verify.build of images already built."""
    return [(s, service_image(session.settings, s.service, revision.tag)) for s in session.backend.built_services()]
