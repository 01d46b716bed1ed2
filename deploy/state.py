"""What runs in one environment, read once per step: the stack's containers and where the proxy sends traffic.

A step reads a ``Snapshot`` (one ``docker ps``, one ``docker inspect`` and, when a proxy runs, one read of its
upstream file) and passes it down, instead of each helper listing containers again: over SSH each listing is a
round trip. ``Snapshot.serving`` is the one definition of which container serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from .commands import docker
from .commands import proxy as proxy_cmd
from .config import Settings
from .containers import Container, parse_ids, parse_inspect
from .target import Target


@dataclass(frozen=True)
class Snapshot:
    app_service: str
    proxy_service: str
    containers: tuple[Container, ...]
    upstream: str | None = None  # the container (or service) name the proxy's upstream file names

    def of(self, service: str) -> list[Container]:
        return [c for c in self.containers if c.service == service]

    @property
    def apps(self) -> list[Container]:
        """Running app containers, oldest first."""
        return [c for c in self.of(self.app_service) if c.running]

    @property
    def stopped_apps(self) -> list[Container]:
        return [c for c in self.of(self.app_service) if not c.running]

    @property
    def proxy(self) -> Container | None:
        return next((c for c in self.of(self.proxy_service) if c.running), None)

    @property
    def serving(self) -> Container | None:
        """The running app container that takes traffic: the one the upstream names, else the newest running.

        The upstream names the app *service* after a first start (Docker's DNS picks any container); then every
        running app container may take traffic and the newest is the release in service.
        """
        apps = self.apps
        if not apps:
            return None
        return next((c for c in apps if c.name == self.upstream), apps[-1])

    @property
    def newest_app(self) -> Container | None:
        """The app container of the release in service, running or not (start/stop need one that is stopped)."""
        if self.serving is not None:
            return self.serving
        apps = self.of(self.app_service)
        return max(apps, key=lambda c: (c.started_at, c.number)) if apps else None

    def orphans(self) -> list[Container]:
        """Running app containers the proxy does not route to, while it names one container: left by a killed
        deploy (the deploy lock rules out another rollout). None when the upstream names the service."""
        names = {c.name for c in self.apps}
        if len(names) < 2 or self.upstream not in names:
            return []
        return [c for c in self.apps if c.name != self.upstream]


def read(target: Target, settings: Settings, *, upstream: bool = True) -> Snapshot:
    listed = target.probe(docker.containers(settings.project, all_states=True), check=True)
    ids = parse_ids(listed.stdout)
    containers: list[Container] = []
    if ids:
        inspected = target.probe(docker.inspect(ids))
        # A container can vanish between ps and inspect; inspect then fails for that id only.
        if inspected.ok or inspected.stdout.strip():
            containers = parse_inspect(inspected.stdout)
    snapshot = Snapshot(settings.app_service, settings.proxy_service, tuple(containers))
    proxy = snapshot.proxy
    if proxy is None or not upstream:
        return snapshot
    upstream = read_upstream(target, settings, proxy)
    return Snapshot(settings.app_service, settings.proxy_service, tuple(containers), upstream)


def read_upstream(target: Target, settings: Settings, proxy: Container) -> str | None:
    result = target.probe(proxy_cmd.read_upstream(proxy.id, settings.upstream_file))
    return parse_upstream(result.stdout) if result.ok else None


def parse_upstream(text: str) -> str | None:
    for line in text.splitlines():
        words = line.replace(";", " ").split()
        if len(words) >= 2 and words[0] == "server":
            return words[1].rsplit(":", 1)[0]
    return None
