"""What a user's compose file says about the app service: read with pyyaml, no compose run, no I/O.

Only the facts the toolkit needs are taken: the app service's fixed name, published ports, build section, image,
networks and restart policy, the ports it listens on, and whether the proxy service is there already. Values
with ``${...}`` interpolation are read with their default (``${PORT:-8000}`` is 8000); a variable without one is
unknown, never guessed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from droplet_deploy.core.errors import ComposeFileError
from droplet_deploy.steps.build import ServiceBuild


class _Loader(yaml.SafeLoader):
    """SafeLoader that accepts compose's merge tags (``!reset``, ``!override``) in the user's own files."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    assert isinstance(node, yaml.ScalarNode)
    return loader.construct_scalar(node)


for _tag in ("!reset", "!override"):
    _Loader.add_constructor(_tag, _tagged)


def load(text: str, where: str) -> dict:
    """Parse a compose file; ``where`` names it in errors."""
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ComposeFileError(f"{where}{at}: {problem}", hint="fix the YAML; `docker compose config` shows it") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or not doc["services"]:
        raise ComposeFileError(f"{where}: no services", hint="a compose file lists its services under `services:`")
    return doc


def services(doc: Mapping) -> dict[str, dict]:
    return {str(name): (spec if isinstance(spec, dict) else {}) for name, spec in doc["services"].items()}


_DEFAULTED = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}")
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")


def with_defaults(value: Any) -> str | None:
    """``value`` as compose would read it with no variables set: ``${X:-d}`` becomes d; an unset ``${X}``: None."""
    text = str(value).replace("$$", "\0")
    text = _DEFAULTED.sub(lambda m: m.group(1), text)
    if _VARIABLE.search(text):
        return None
    return text.replace("\0", "$")


@dataclass(frozen=True)
class Port:
    """One ``ports:`` entry of a service. ``published`` is None when the host port is chosen by Docker."""

    target: int | None
    published: int | None = None
    host_ip: str | None = None  # read with defaults; None: every interface, or a variable without a default
    protocol: str = "tcp"
    text: str = ""  # as written, for messages
    # The address as written, variables included (``${BIND_IP}``), for a port that takes this one's place: compose
    # interpolates it from the same environment as the user's file, so the binding is the same, never wider.
    host_ip_as_written: str | None = None


def _port_number(value: Any) -> int | None:
    text = with_defaults(value) if value is not None else None
    if text is None or not text.strip().isdigit():
        return None  # a range ("8000-8001") or an unset variable: not one port
    return int(text.strip())


def parse_port(entry: Any) -> Port:
    """A short (``"127.0.0.1:8000:8000/tcp"``) or long (``{target: 8000, published: 8000}``) ``ports:`` entry."""
    if isinstance(entry, dict):
        written = str(entry["host_ip"]) if entry.get("host_ip") else None
        return Port(_port_number(entry.get("target")), _port_number(entry.get("published")),
                    with_defaults(written) if written else None,
                    str(entry.get("protocol") or "tcp"), yaml.safe_dump(entry, default_flow_style=True).strip(),
                    written)
    text = str(entry)
    host_ip, published, target, protocol = _short_port_fields(text)
    return Port(_port_number(target), _port_number(published) if published else None,
                with_defaults(host_ip) if host_ip else None, protocol or "tcp", text, host_ip or None)


_HELD = re.compile("\x01(\\d+)\x01")


def _short_port_fields(text: str) -> tuple[str | None, str | None, str, str]:
    """host_ip, published, target and protocol of ``[HOST_IP:][PUBLISHED:]TARGET[/PROTOCOL]``."""
    # Variables may hold ':' themselves (``${PORT:-8000}:8000``): split with them set aside.
    held: list[str] = []

    def hold(match: re.Match) -> str:
        held.append(match.group())
        return f"\x01{len(held) - 1}\x01"

    body, _, protocol = re.sub(r"\$\{[^}]*\}", hold, text).partition("/")
    host_ip = None
    if body.startswith("["):  # an IPv6 host address: "[::1]:8000:8000"
        host_ip, _, body = body[1:].partition("]")
        body = body.lstrip(":")
    parts = body.rsplit(":", 2 if host_ip is None else 1)
    if len(parts) == 3:
        host_ip, published, target = parts
    elif len(parts) == 2:
        published, target = parts
    else:
        published, target = None, parts[0]

    def restore(part: str | None) -> str | None:
        return _HELD.sub(lambda m: held[int(m.group(1))], part) if part is not None else None

    return restore(host_ip), restore(published), restore(target) or "", protocol


# What compose reads as "every interface" when written as the address.
_EVERY_INTERFACE = ("", "0.0.0.0", "::")  # noqa: S104 - compared against, never bound


@dataclass(frozen=True)
class AppService:
    """The facts about the app service the override and preflight need."""

    name: str
    container_name: str | None
    ports: tuple[Port, ...]
    expose: tuple[int, ...]
    has_build: bool
    image: str | None
    networks: tuple[str, ...]  # named in the service; empty: compose's default network
    network_mode: str | None
    restart: str | None

    @property
    def published(self) -> Port | None:
        """The first port published on the host with a known number: the one users reach the app on."""
        return next((p for p in self.ports if p.published is not None), None)

    @property
    def bound_to(self) -> tuple[str | None, ...]:
        """The host addresses (as written) the app's published ports listen on, each once; ``(None,)`` when any
        of them listens on every interface. The proxy that takes the public port over listens on the same."""
        found = [p.host_ip_as_written for p in self.ports if p.published is not None or p.host_ip_as_written]
        if not found or any(ip is None or ip in _EVERY_INTERFACE for ip in found):
            return (None,)
        return tuple(dict.fromkeys(found))

    @property
    def listens_on(self) -> tuple[int, ...]:
        """Ports inside the container the compose file names (published targets, then ``expose``)."""
        found = [p.target for p in self.ports if p.target is not None] + list(self.expose)
        return tuple(dict.fromkeys(found))

    @property
    def image_is_deployed_tag(self) -> bool:
        """The file takes the image from APP_IMAGE, which the toolkit sets to the tag it built and verified."""
        return self.image is not None and "APP_IMAGE" in self.image


def app_service(doc: Mapping, name: str, where: str) -> AppService:
    found = services(doc)
    if name not in found:
        raise ComposeFileError(f"{where}: no service {name!r} (services: {', '.join(found)})",
                               hint="set deploy.app_service to the service that runs your app")
    spec = found[name]
    networks = spec.get("networks") or ()
    expose = (_port_number(str(e).partition("/")[0]) for e in spec.get("expose") or ())
    return AppService(
        name=name,
        container_name=str(spec["container_name"]) if spec.get("container_name") else None,
        ports=tuple(parse_port(p) for p in spec.get("ports") or ()),
        expose=tuple(p for p in expose if p is not None),
        has_build=spec.get("build") is not None,
        image=str(spec["image"]) if spec.get("image") else None,
        networks=tuple(str(n) for n in networks),  # a list of names or a mapping keyed by them
        network_mode=str(spec["network_mode"]) if spec.get("network_mode") else None,
        restart=str(spec["restart"]) if spec.get("restart") else None,
    )


@dataclass(frozen=True)
class ReleaseServices:
    """The services besides the app that a release updates: those on the app's image (a worker with
    ``image: ${APP_IMAGE}``, or the app's own ``build:``) and those with a build of their own."""

    on_app_image: tuple[str, ...] = ()
    built: tuple[ServiceBuild, ...] = ()
    building_like_app: tuple[str, ...] = ()  # of on_app_image, those the file builds (``build: .``)

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.on_app_image, *(b.service for b in self.built))


def _build_args(value: Any) -> dict[str, str]:
    """A ``build.args`` mapping or ``KEY=VALUE`` list, read with defaults; a variable without one is left to
    compose's environment at build time, which the toolkit's build does not read: it is left out."""
    pairs = value.items() if isinstance(value, dict) else (str(v).partition("=")[::2] for v in value or ())
    found = {}
    for key, raw in pairs:
        text = with_defaults(raw) if raw is not None else None
        if text is not None:
            found[str(key)] = text
    return found


def service_build(name: str, build: Any, compose_dir: str) -> ServiceBuild:
    """A ``build:`` (a context path, or the long form) with its paths joined to the compose file's directory, as
    compose resolves them."""
    spec = build if isinstance(build, dict) else {"context": build}
    context = posixpath.normpath(posixpath.join(compose_dir, with_defaults(spec.get("context") or ".") or "."))
    dockerfile = posixpath.normpath(posixpath.join(context, with_defaults(spec.get("dockerfile") or "Dockerfile")
                                                   or "Dockerfile"))
    target = with_defaults(spec["target"]) if spec.get("target") else None
    return ServiceBuild(name, context, dockerfile, target, _build_args(spec.get("args")))


def release_services(doc: Mapping, app: str, compose_file: str, *, context: str, dockerfile: str,
                     proxy: str) -> ReleaseServices:
    """Which services besides ``app`` (and the toolkit's ``proxy``) run the release: the app's image when the
    file names it so (``${APP_IMAGE}``) or builds them as it builds the app (the same context, Dockerfile and
    target as the app's ``build:``, or as the toolkit's own build), else a build of their own."""
    compose_dir = posixpath.dirname(compose_file)
    found = services(doc)
    app_spec = found.get(app, {})
    same_as_app: set[tuple[str, str, str | None]] = {
        (posixpath.normpath(context), posixpath.normpath(posixpath.join(context, dockerfile)), None)}
    if app_spec.get("build") is not None:
        own = service_build(app, app_spec["build"], compose_dir)
        same_as_app.add((own.context, own.dockerfile, own.target))
    on_app, built, like_app = [], [], []
    for name, spec in found.items():
        if name in (app, proxy):
            continue
        if "APP_IMAGE" in str(spec.get("image") or ""):
            on_app.append(name)
        elif spec.get("build") is not None:
            build = service_build(name, spec["build"], compose_dir)
            if (build.context, build.dockerfile, build.target) in same_as_app:
                on_app.append(name)
                like_app.append(name)
            else:
                built.append(build)
    return ReleaseServices(tuple(on_app), tuple(built), tuple(like_app))


def has_service(doc: Mapping, name: str) -> bool:
    return name in services(doc)


_EXPOSE = re.compile(r"^\s*EXPOSE\s+(.+)$", re.IGNORECASE | re.MULTILINE)


def dockerfile_exposed(text: str) -> tuple[int, ...]:
    """Ports named by the Dockerfile's EXPOSE lines (``EXPOSE 8000 9090/tcp``), in order, each once."""
    found: list[int] = []
    for line in _EXPOSE.findall(text):
        for word in line.split():
            number = _port_number(word.partition("/")[0])
            if number is not None and number not in found:
                found.append(number)
    return tuple(found)
