"""The plan's backend + frontend shape: the proxy the toolkit adds routes ``api_path`` to the app and ``/`` to the
``frontend_service`` (its own image, static files behind its own web server), and a release rolls each of them the
same way: start beside, prove on its own address, switch its upstream file with a graceful reload, check through
the public port, drain. Neither path drops a request while either side changes.

The frontend's rollout is the app's ``Rollout`` run with the frontend's settings: its service, port and upstream
file, its root as the health path, proven by the image label of the container that answered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from droplet_deploy.core.config import Settings
from droplet_deploy.engines import nginx
from droplet_deploy.engines.compose import compose_file


def settings_for(settings: Settings) -> Settings:
    """``settings`` as the app's rollout reads them, about the frontend."""
    assert settings.frontend_service is not None
    return dataclasses.replace(settings, app_service=settings.frontend_service, app_port=settings.frontend_port,
                               upstream_file=nginx.frontend_file(settings.upstream_file), health_path="/",
                               check_endpoints=["/"], health_revision="label")


def problems(doc: Mapping, settings: Settings, *, has_proxy: bool) -> list[str]:
    """What keeps ``frontend_service`` from working with this compose file; one line each."""
    front = settings.frontend_service
    if front is None:
        return []
    if front == settings.app_service or not compose_file.has_service(doc, front):
        return [f"deploy.frontend_service is {front!r}, which is not a service of its own in the file (services: "
                f"{', '.join(compose_file.services(doc))}); name the frontend's service"]
    if has_proxy:
        return [f"deploy.frontend_service needs the proxy the toolkit adds, and the file has its own "
                f"{settings.proxy_service!r}; remove that service, or route / and {settings.api_path} in it yourself "
                "and unset frontend_service"]
    return []
