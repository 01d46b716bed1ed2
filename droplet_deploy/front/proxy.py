"""The front proxy on one host: its container (created on first use, replaced beside itself when the image
changes), its config (written to the front directory, then loaded through Caddy's admin API: the same process
takes it, no connection dropped), the route files and the certificates Caddy holds."""

from __future__ import annotations

import json
import posixpath
import time
from dataclasses import dataclass

from droplet_deploy.commands import files
from droplet_deploy.commands import front as cmd
from droplet_deploy.core.config import Settings
from droplet_deploy.core.errors import FrontError
from droplet_deploy.front import caddy_config
from droplet_deploy.front import route as routes_mod
from droplet_deploy.front.route import Listeners, Route
from droplet_deploy.transport.target import Target

START_TIMEOUT = 30.0
# How long an old front container may finish the requests it holds once its replacement serves.
STOP_GRACE = 30
READY = "serving initial configuration"


@dataclass(frozen=True)
class Running:
    container: str
    created: bool = False
    replaced: str | None = None  # the container an upgrade replaced


class FrontProxy:
    def __init__(self, target: Target, settings: Settings):
        self.target = target
        self.settings = settings
        self.dir = settings.front_dir
        self.name = settings.front_name

    # --- routes --------------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        return routes_mod.parse(self.target.probe(cmd.read_routes(self.dir)).stdout)

    def write_route(self, route: Route) -> None:
        self.target.run(files.mkdir_p(posixpath.join(self.dir, routes_mod.ROUTES)), does="make the front's route directory")
        self.target.write_text(routes_mod.file_name(self.dir, route.project), route.to_json() + "\n")

    def drop_route(self, project: str) -> None:
        self.target.run(cmd.remove_route(routes_mod.file_name(self.dir, project)), does="remove this environment's route")

    def install_files(self) -> None:
        """Copy the CA bundle and certificate files the settings name into the front directory (mode 600)."""
        settings, project = self.settings, self.settings.project
        copies = []
        if settings.acme_ca_bundle:
            copies.append((settings.acme_ca_bundle, posixpath.join(self.dir, routes_mod.CA_BUNDLES, f"{project}.pem")))
        if settings.tls_certificate and settings.tls_key:
            base = posixpath.join(self.dir, routes_mod.CERTIFICATES, project)
            copies += [(settings.tls_certificate, base + ".crt"), (settings.tls_key, base + ".key")]
        for source, path in copies:
            result = self.target.run(cmd.install_private(source, path), check=False, does=f"install {source}")
            if not result.ok:
                key = "acme_ca_bundle" if path.endswith(".pem") else "tls_certificate/tls_key"
                raise FrontError(f"{source} cannot be read on {self.target.name}",
                                  hint=f"put the file there, or point deploy.{key} at the file on the host")

    # --- the container -------------------------------------------------------------------------------------

    def containers(self) -> list[tuple[str, str, str]]:
        """(id, state, name) of every container of this front proxy."""
        out = self.target.probe(cmd.containers(self.name)).stdout
        return [tuple(line.split(" ", 2)) for line in out.splitlines() if line.count(" ") >= 2]  # type: ignore[misc]

    def running(self) -> str | None:
        return next((name for _id, state, name in self.containers() if state == "running"), None)

    def ensure(self, listeners: Listeners, routes: list[Route]) -> Running:
        """The front container, started with the config of ``routes`` when none runs, replaced beside itself when
        it runs another image than ``front_image``."""
        target = self.target
        wanted = target.probe(cmd.wanted_image_id(self.settings.front_image)).stdout.strip()
        if not wanted and not target.dry:
            raise FrontError(f"the front proxy's image {self.settings.front_image} is not on {target.name}",
                              hint=f"docker pull {self.settings.front_image} there, or set deploy.front_image")
        current = self.running()
        if current is not None:
            if target.probe(cmd.image_id(current)).stdout.strip() == wanted or target.dry:
                return Running(current)
        self.write_config(listeners, routes, self.certified(current) if current else set())
        for _id, state, stopped in self.containers():
            if state != "running":  # after a stop, or an earlier upgrade that did not finish
                target.run(cmd.remove(stopped), check=False, does="remove a stopped front container")
        name = f"{self.name}.{wanted.split(':')[-1][:12] or 'new'}"
        since = self.clock()
        target.run(cmd.run(self.name, name, self.settings.front_image, self.dir), does="start the front proxy")
        try:
            self.wait_ready(name, since)
        except FrontError:
            target.run(cmd.remove_forced(name), check=False, does="remove the front proxy that did not start")
            raise
        if current is None:
            return Running(name, created=True)
        # Both listen (Caddy binds with SO_REUSEPORT): the old one stops accepting and finishes what it holds.
        target.run(cmd.stop(current, STOP_GRACE), does="stop the old front proxy")
        target.run(cmd.remove(current), check=False, does="remove the old front proxy")
        return Running(name, replaced=current)

    def wait_ready(self, container: str, since: str) -> None:
        if self.target.dry:
            return
        deadline = time.monotonic() + START_TIMEOUT
        log = ""
        while time.monotonic() < deadline:
            result = self.target.probe(cmd.logs_since(container, since))
            log = result.stdout + result.stderr
            if READY in log:
                return
            if not any(name == container and state == "running" for _id, state, name in self.containers()):
                break
            time.sleep(0.2)
        raise FrontError(f"the front proxy {container} did not start on {self.target.name}: "
                          f"{_last_error(log) or 'no answer within ' + str(int(START_TIMEOUT)) + 's'}",
                          hint=f"docker logs {container} shows why; a port in use? (http_port, https_port, "
                               "front_admin_port)")

    # --- config --------------------------------------------------------------------------------------------

    def write_config(self, listeners: Listeners, routes: list[Route], certified: set[str]) -> None:
        config = caddy_config.build(listeners, routes, certified)
        self.target.write_text(posixpath.join(self.dir, cmd.CONFIG_FILE), json.dumps(config, indent=1) + "\n")

    def apply(self, container: str, listeners: Listeners, routes: list[Route], certified: set[str]) -> None:
        """The whole config, loaded into the running Caddy through its admin API."""
        self.write_config(listeners, routes, certified)
        result = self.target.run(cmd.reload(container, listeners.admin), check=False, does="load the front's config")
        if not result.ok:
            raise FrontError(f"the front proxy refused its new config: {_last_error(result.stderr) or result.stderr[-200:]}",
                              hint=f"the previous config keeps serving; docker logs {container} shows more")

    def certified(self, container: str | None) -> set[str]:
        if container is None:
            return set()
        return set(self.target.probe(cmd.certified(container)).stdout.split())

    def clock(self) -> str:
        return self.target.probe(cmd.now()).stdout.strip() or "0"

    def errors_since(self, container: str, since: str) -> list[dict]:
        """Caddy's error log lines (JSON) since ``since``."""
        result = self.target.probe(cmd.logs_since(container, since))
        found = []
        for line in (result.stdout + result.stderr).splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") == "error":
                found.append(entry)
        return found


def _last_error(log: str) -> str | None:
    for line in reversed(log.splitlines()):
        try:
            entry = json.loads(line)
        except ValueError:
            if line.strip().startswith("Error:"):
                return line.strip()[6:].strip()
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            return str(entry.get("error") or entry.get("msg"))
    return None
