"""The compose override that lets a user's compose file deploy with zero downtime as it is. Pure: no I/O.

A rollout runs the new app container beside the old one and moves traffic through a proxy. A compose file written
for ``docker compose up`` usually stands in the way: a fixed ``container_name`` (two containers cannot share it),
published ``ports`` (two cannot bind one host port), ``build:`` (compose would build its own image, unverified)
and no proxy. Compose v2.24+ merges override files with ``!reset``, so one file per release, passed as a second
``--file``, undoes all of it and leaves the user's file, and every other service in it, as written::

    services:
      web:                               # the app service
        image: ${APP_IMAGE:-myapp:3f2c1a9b0d4e}  # the tag that was built and verified
        build: !reset null
        container_name: !reset null
        ports: !reset []
      proxy:                             # only when the file has no proxy service
        image: nginx:1.27-alpine
        ports: ["8000:80"]               # the port the app published (deploy.public_port)
        configs: [{source: deploy_proxy_nginx, target: /etc/nginx/conf.d/default.conf}]
    configs:
      deploy_proxy_nginx: {content: ...}  # the nginx config, inline: nothing else to upload or keep in sync

Where an override cannot do it (Compose v1, or v2 before 2.24), ``manual_changes`` names every edit to make.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from droplet_deploy.commands import proxy as proxy_cmd
from droplet_deploy.core.config import Settings
from droplet_deploy.engines import nginx
from droplet_deploy.engines.compose.compose_file import AppService, ReleaseServices
from droplet_deploy.steps.build import service_image

# `!reset` in override files arrived in Compose 2.24.0.
MIN_VERSION = (2, 24, 0)
# The variable through which the toolkit names the app's image to compose (deploy.stack.compose_variables).
IMAGE_VARIABLE = "APP_IMAGE"
CONFIG_NAME = "deploy_proxy_nginx"
NO_OTHERS = ReleaseServices()  # a compose file with no service besides the app and the proxy
# Where the docs show a proxy service to copy, for users who must edit their compose file themselves.
DOCS = "docs/configuration.md#your-compose-file"


@dataclass(frozen=True)
class Change:
    """One difference between the user's app service and what a rollout needs."""

    done: str  # what the override does about it
    manual: str | None  # the edit a user makes when no override can; None: not needed without an override
    on_app: bool = True  # the edit is to the app service (else: to the file, e.g. a service to add)


def changes(app: AppService, *, has_proxy: bool, settings: Settings,
            others: ReleaseServices = NO_OTHERS) -> list[Change]:
    """What stands between the compose file as written and a zero-downtime rollout; empty: deploy it as it is."""
    found = [Change(f"service {name}: the app's image", None, on_app=False) for name in _built_like_app(others)]
    found += [Change(f"service {b.service}: its image built by the toolkit ({b.dockerfile})", None, on_app=False)
              for b in others.built]
    if not app.image_is_deployed_tag:
        found.append(Change("image: the built tag",
                            "set `image: ${APP_IMAGE}` (the toolkit passes the tag it built and verified)"))
    if app.has_build:
        found.append(Change("build: dropped (the toolkit builds the image)", None))
    if app.container_name:
        found.append(Change(f"container_name {app.container_name!r} dropped",
                            f"remove `container_name: {app.container_name}` (a deploy runs two app containers "
                            "side by side)"))
    if app.ports:
        shown = ", ".join(p.text for p in app.ports)
        found.append(Change(f"ports {shown} dropped",
                            f"remove `ports:` ({shown}): the proxy publishes the port"))
    if not has_proxy:
        found.append(Change(f"{settings.proxy_service} service added, publishing {settings.public_port}",
                            f"add a `{settings.proxy_service}` service: nginx including {settings.upstream_file} "
                            f"and publishing {settings.public_port} (example: {DOCS})", on_app=False))
    return found


def blockers(app: AppService) -> list[str]:
    """What neither an override nor the toolkit changes for the user: it would change how the app runs."""
    if app.network_mode:
        return [f"service {app.name}: remove `network_mode: {app.network_mode}` (the proxy reaches the app by its "
                "container name on a compose network)"]
    return []


def port_problem(app: AppService, app_port: int) -> str | None:
    """A configured app_port the compose file never mentions, while it names others: the health wait would time out."""
    ports = app.listens_on
    if not ports or app_port in ports:
        return None
    return (f"service {app.name} listens on {', '.join(map(str, ports))} (ports/expose), "
            f"deploy.app_port is {app_port}; set deploy.app_port: {ports[0]}")


def parse_version(text: str) -> tuple[int, ...] | None:
    """``2.40.3``, ``v2.24.0-desktop.1``, ``1.29.2`` -> a comparable tuple; None when it is not a version."""
    match = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(n or 0) for n in match.groups()) if match else None


def can_override(version: tuple[int, ...] | None) -> bool:
    return version is not None and version >= MIN_VERSION


def manual_changes(app: AppService, found: Sequence[Change]) -> list[str]:
    """Every edit, by service, for a compose that cannot apply the override."""
    return [f"service {app.name}: {c.manual}" if c.on_app else c.manual for c in found if c.manual]


# --- rendering ------------------------------------------------------------------------------------------


class _Reset:
    """Compose's ``!reset`` merge tag: the key is dropped from what the earlier files said."""

    def __init__(self, empty: Any):
        self.empty = empty


class _Dumper(yaml.SafeDumper):
    pass


def _represent_reset(dumper: yaml.SafeDumper, data: _Reset) -> yaml.Node:
    if isinstance(data.empty, list):
        return dumper.represent_sequence("!reset", [], flow_style=True)
    return dumper.represent_scalar("!reset", "null")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


_Dumper.add_representer(_Reset, _represent_reset)
_Dumper.add_representer(str, _represent_str)


def _literal(value: Any) -> Any:
    """Compose interpolates ``$`` in every string it reads; nginx variables and shell scripts need theirs kept."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    return value


def config_name(doc: Mapping) -> str:
    """A name for the proxy's config entry that the user's top-level ``configs:`` does not use already."""
    taken = set((doc.get("configs") or {}) if isinstance(doc.get("configs"), dict) else ())
    name, number = CONFIG_NAME, 1
    while name in taken:
        number += 1
        name = f"{CONFIG_NAME}_{number}"
    return name


def proxy_ports(app: AppService, settings: Settings) -> list[dict[str, Any]]:
    """The proxy's published port, on each address the app's own ports were bound to (as written: compose
    interpolates a ``${BIND_IP}`` the same way for both), never on more: Docker's port rules bypass host
    firewalls, so a port that was private must stay private."""
    ports = []
    for address in app.bound_to:
        port: dict[str, Any] = {"target": nginx.LISTEN_PORT, "published": str(settings.public_port)}
        if address is not None:
            port["host_ip"] = address
        ports.append(port)
    return ports


def proxy_service(app: AppService, settings: Settings, config: str) -> dict:
    front = settings.frontend_service
    command = proxy_cmd.start(settings.upstream_file, app.name, settings.app_port) if not front else \
        proxy_cmd.start_routes((settings.upstream_file, app.name, settings.app_port),
                               (nginx.frontend_file(settings.upstream_file), front, settings.frontend_port))
    spec: dict[str, Any] = {
        "image": settings.proxy_image,
        "command": command,
        "configs": [{"source": config, "target": nginx.CONFIG_PATH}],
        "ports": [],  # set by build: its addresses are compose's to interpolate, not escaped as literal text
        "depends_on": [app.name, *([front] if front else [])],
        "healthcheck": {"test": proxy_cmd.alive(), "interval": "10s", "timeout": "3s", "retries": 3,
                        "start_period": "5s"},
    }
    if app.networks:
        spec["networks"] = list(app.networks)
    if app.restart:
        spec["restart"] = app.restart  # after a reboot the proxy comes back with the app it fronts
    return spec


def _built_like_app(others: ReleaseServices) -> tuple[str, ...]:
    """The services on the app's image that the file builds (``build: .``): the override gives them its image.
    (Those naming ``${APP_IMAGE}`` get it from the variable.)"""
    return tuple(name for name in others.on_app_image if name in others.building_like_app)


def build(doc: Mapping, app: AppService, settings: Settings, image: str, *, has_proxy: bool,
          others: ReleaseServices = NO_OTHERS) -> dict:
    """The override document for one release (``image``), as a plain mapping with ``!reset`` markers."""
    services: dict[str, Any] = {app.name: {
        # The release's tag, unless the toolkit names another (APP_IMAGE): a one-off command of the serving release
        # (deploy.exec) must run its image even when a deploy that failed wrote this file for a newer one.
        "image": f"${{{IMAGE_VARIABLE}:-{image}}}",
        "build": _Reset(None),
        "container_name": _Reset(None),
        "ports": _Reset([]),
    }}
    for name in _built_like_app(others):
        services[name] = {"image": f"${{{IMAGE_VARIABLE}:-{image}}}", "build": _Reset(None)}
    tag = image.rpartition(":")[2]
    for built in others.built:
        # A literal tag: a rollback's kept override names that release's own image of the service.
        services[built.service] = {"image": service_image(settings, built.service, tag), "build": _Reset(None)}
    if settings.frontend_service:
        # Rolled like the app (two side by side while it changes): no fixed name, no host port of its own.
        services.setdefault(settings.frontend_service, {}).update(container_name=_Reset(None), ports=_Reset([]))
    override: dict[str, Any] = {"services": services}
    if not has_proxy:
        name = config_name(doc)
        proxy = _literal(proxy_service(app, settings, name))
        proxy["ports"] = proxy_ports(app, settings)
        services[settings.proxy_service] = proxy
        override["configs"] = {name: {"content": _literal(nginx.config_for(settings))}}
    return override


HEADER = ("# Written by the deploy toolkit for {image}, on every deploy and rollback: do not edit.\n"
          "# It lets {compose_file} deploy with zero downtime as it is (docs/configuration.md#your-compose-file).\n")


def render(doc: Mapping, app: AppService, settings: Settings, image: str, *, has_proxy: bool,
           others: ReleaseServices = NO_OTHERS) -> str:
    text = yaml.dump(build(doc, app, settings, image, has_proxy=has_proxy, others=others), Dumper=_Dumper,
                     sort_keys=False, width=120)
    # PyYAML quotes a tagged "null"; compose reads both alike, and its docs write it bare.
    text = text.replace("!reset 'null'", "!reset null")
    return HEADER.format(image=image, compose_file=settings.compose_file) + text
