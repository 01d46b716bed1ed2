"""What one environment asks of the front proxy, as kept in ``<front_dir>/routes/<project>.json`` on the host:
any checkout of any project that deploys to the host reads every route file and rebuilds the whole config. Pure."""

from __future__ import annotations

import json
import posixpath
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import FrontError

# Where a route's files live in the front directory (mounted into the container at commands.front.MOUNT).
ROUTES = "routes"
CA_BUNDLES = "ca"
CERTIFICATES = "certs"


@dataclass(frozen=True)
class Listeners:
    """What the one front container binds: every environment on a host must agree on it."""

    http_port: int
    https_port: int
    bind: str | None
    admin_port: int
    renew_check_interval: float = 600.0  # seconds between the front's checks of its certificates' expiry

    @property
    def admin(self) -> str:
        return f"127.0.0.1:{self.admin_port}"

    def describe(self) -> str:
        where = f"{self.bind}:" if self.bind else ""
        renew = "" if self.renew_check_interval == 600.0 else f", renewal checks every {self.renew_check_interval:g}s"
        return f"HTTP {where}{self.http_port}, HTTPS {where}{self.https_port}, admin {self.admin}{renew}"


@dataclass(frozen=True)
class Route:
    project: str
    env: str
    app: str
    hosts: tuple[str, ...]
    path: str | None
    upstream_port: int
    listeners: Listeners
    tls: str = "auto"  # auto: ACME or the files below; off: plain HTTP only
    acme_directory: str = ""
    acme_email: str | None = None
    ca_bundle: str | None = None  # inside the container, under commands.front.MOUNT
    certificate: str | None = None
    key: str | None = None
    hsts: bool = False
    max_body_mb: int = 100  # 0: no limit at the front
    read_timeout: float = 60.0
    gzip: bool = True
    maintenance: dict[str, Any] | None = field(default=None)

    @property
    def label(self) -> str:
        return f"{self.app} {self.env} (project {self.project})"

    @property
    def uses_acme(self) -> bool:
        return self.tls == "auto" and self.certificate is None

    def with_maintenance(self, maintenance: dict[str, Any] | None) -> Route:
        return replace(self, maintenance=maintenance)

    def to_json(self) -> str:
        data = asdict(self)
        data["hosts"] = list(self.hosts)
        return json.dumps(data, sort_keys=True)


def file_name(front_dir: str, project: str) -> str:
    return posixpath.join(front_dir, ROUTES, f"{project}.json")


def listeners(settings: Settings) -> Listeners:
    return Listeners(http_port=settings.http_port, https_port=settings.https_port, bind=settings.front_bind,
                     admin_port=settings.front_admin_port, renew_check_interval=settings.renew_check_interval)


def of(settings: Settings, mount: str) -> Route:
    """The route ``settings`` asks for; files it names are referred to by where the front directory installs them
    (``mount`` as the container sees it)."""
    ca = posixpath.join(mount, CA_BUNDLES, f"{settings.project}.pem") if settings.acme_ca_bundle else None
    certificate = key = None
    if settings.tls_certificate:
        certificate = posixpath.join(mount, CERTIFICATES, f"{settings.project}.crt")
        key = posixpath.join(mount, CERTIFICATES, f"{settings.project}.key")
    return Route(project=settings.project, env=settings.env, app=settings.app_name, hosts=tuple(settings.hosts),
                 path=settings.path_prefix, upstream_port=settings.public_port, listeners=listeners(settings),
                 tls=settings.tls, acme_directory=settings.acme_directory, acme_email=settings.acme_email,
                 ca_bundle=ca, certificate=certificate, key=key, hsts=settings.hsts,
                 max_body_mb=settings.max_body_mb, read_timeout=settings.read_timeout, gzip=settings.gzip)


def parse(text: str) -> list[Route]:
    """Every route of ``commands.front.read_routes``'s output; a file that is not a route stops with its text."""
    routes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            data["hosts"] = tuple(data["hosts"])
            data["listeners"] = Listeners(**data["listeners"])
            routes.append(Route(**data))
        except (ValueError, TypeError, KeyError) as exc:
            raise FrontError(f"a route file of the front proxy cannot be read ({exc}): {line[:120]}",
                              hint="remove the broken file from <front_dir>/routes/; its environment's next "
                                   "deploy writes it again") from None
    return routes


def claims(route: Route) -> set[tuple[str, str]]:
    return {(host, route.path or "") for host in route.hosts}


def conflict(mine: Route, others: list[Route]) -> str | None:
    """The line that refuses ``mine`` when another environment already routes one of its names (and prefix)."""
    for other in others:
        if other.project == mine.project:
            continue
        shared = sorted(claims(mine) & claims(other))
        if shared:
            host, path = shared[0]
            return (f"{host}{path} is claimed by both {mine.label} and {other.label}; "
                    f"give each environment its own host name (or path_prefix)")
    return None


def listener_mismatch(mine: Route, others: list[Route]) -> str | None:
    for other in others:
        if other.project != mine.project and other.listeners != mine.listeners:
            return (f"the front proxy on this host listens on {other.listeners.describe()} (as {other.label} "
                    f"set it), {mine.label} asks for {mine.listeners.describe()}; set the same http_port, "
                    "https_port, front_bind, front_admin_port and renew_check_interval for every environment on "
                    "the host")
    return None


def merged(mine: Route, others: list[Route]) -> list[Route]:
    """Every route, ``mine`` in place of its earlier version (whose maintenance it keeps), ordered by project."""
    earlier = next((r for r in others if r.project == mine.project), None)
    if earlier is not None and mine.maintenance is None:
        mine = mine.with_maintenance(earlier.maintenance)
    rest = [r for r in others if r.project != mine.project]
    return sorted([*rest, mine], key=lambda r: r.project)
