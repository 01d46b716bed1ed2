"""What runs in one environment, as every engine reports it: its containers (on a swarm, each task as one), where
the proxy sends traffic, and what a rollout did. ``Snapshot.serving`` is the one definition of which container
serves.

A step reads a ``Snapshot`` once and passes it down, instead of each helper listing containers again: over SSH
each listing is a round trip.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    service: str
    image: str
    revision: str | None
    state: str
    health: str | None
    started_at: str
    number: int
    addresses: tuple[str, ...]
    published: tuple[int, ...] = ()  # host ports it publishes (a stack started by `compose up` with `ports:`)

    @property
    def running(self) -> bool:
        return self.state == "running"


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


@dataclass(frozen=True)
class Outcome:
    container: Container | None
    previous: Container | None
    first_deploy: bool
    proof: str = ""  # how the revision was proven through the public port: "health body", "image label of <name>"
