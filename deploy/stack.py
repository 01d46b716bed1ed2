"""One environment's compose stack on one target: its compose command, containers and proxy upstream."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from .commands import compose as compose_cmd
from .commands import docker
from .commands.compose import Compose
from .config import Settings
from .containers import Container, app_containers, list_containers, proxy_container
from .errors import PreflightFailed
from .target import Target

# Rewrites the proxy's upstream to one container and reloads nginx gracefully; on a config nginx rejects,
# the previous upstream is put back. Values arrive as positional parameters, never spliced into the script.
# `nginx -s reload` returns before the reload is done: for a while the old workers still accept connections and
# send them to the old upstream, so stopping the old container right away showed up as 502s under load. The
# script therefore returns once the workers that ran before the reload have exited (at most 30 s).
_SWITCH_SCRIPT = (
    'f="$1"; printf "server %s:%s;\\n" "$2" "$3" > "$f.next" || exit 1; '
    'cp -f "$f" "$f.prev" 2>/dev/null; mv -f "$f.next" "$f"; '
    'if ! nginx -t -q; then mv -f "$f.prev" "$f"; echo "nginx rejected the upstream" >&2; exit 1; fi; '
    'old=""; for p in /proc/[0-9]*; do case "$(tr "\\0" " " 2>/dev/null < "$p/cmdline")" in '
    '"nginx: worker process"*) old="$old ${p#/proc/}";; esac; done; '
    'nginx -s reload || exit 1; '
    'i=0; while [ "$i" -lt 300 ]; do left=""; for w in $old; do [ -e "/proc/$w" ] && left=1; done; '
    '[ -z "$left" ] && exit 0; sleep 0.1; i=$((i + 1)); done'
)

# Points the upstream back at the app *service* name, which Docker's DNS resolves to whichever app container
# runs. Needed when the proxy starts afresh: a file still naming a container that has since been removed
# (the stack was taken down after a rollout) makes nginx refuse to start at all.
_RESET_SCRIPT = 'mkdir -p "$(dirname "$1")" && printf "server %s:%s;\\n" "$2" "$3" > "$1"'


# What APP_ENV_FILE names when no env_file is configured: an env file that exists everywhere and sets nothing.
NO_ENV_FILE = "/dev/null"


def detect_compose(target: Target, preference: str = "auto") -> tuple[str, ...]:
    """The compose binary on the target: v2 plugin first, v1 ``docker-compose`` where users still have it."""
    candidates = {
        "auto": [("docker", "compose"), ("docker-compose",)],
        "docker compose": [("docker", "compose")],
        "docker-compose": [("docker-compose",)],
    }[preference]
    for binary in candidates:
        if target.probe(compose_cmd.version(binary)).ok:
            return binary
    raise PreflightFailed(
        f"[{target.name}] no docker compose found (tried {', '.join(' '.join(b) for b in candidates)})",
        hint="install the Compose v2 plugin (see docs/DEPLOYMENT-RUNBOOK.md) or set deploy.compose_command",
    )


def compose_variables(settings: Settings, image: str | None = None) -> dict[str, str]:
    """What the compose file's ${...} interpolation gets.

    APP_ENV_FILE: the compose file names the env file by this absolute path (``env_file: ${APP_ENV_FILE:-.env}``),
    so secrets never sit in the release directory, which is the build context.
    """
    variables = {"PROXY_IMAGE": settings.proxy_image, "PUBLIC_PORT": str(settings.public_port),
                 "APP_ENV_FILE": settings.env_file_path or NO_ENV_FILE}
    if image:
        variables["APP_IMAGE"] = image
    return variables


class Stack:
    def __init__(self, target: Target, settings: Settings, *, compose_file: str | None = None,
                 overrides: Sequence[str] = ()):
        self.target = target
        self.settings = settings
        self.compose_file = compose_file or settings.compose_file
        self.overrides = tuple(overrides)  # merged over compose_file: the toolkit's per-release override

    @functools.cached_property
    def binary(self) -> tuple[str, ...]:
        return detect_compose(self.target, self.settings.compose_command)

    def compose(self, image: str | None = None) -> Compose:
        return Compose(self.settings.project, self.compose_file, self.binary, compose_variables(self.settings, image),
                       self.overrides)

    # -- state -------------------------------------------------------------------------------------------
    def apps(self) -> list[Container]:
        return app_containers(self.target, self.settings)

    def all_apps(self) -> list[Container]:
        return list_containers(self.target, self.settings, self.settings.app_service, all_states=True)

    def proxy(self) -> Container | None:
        return proxy_container(self.target, self.settings)

    def upstream(self, proxy: Container | None = None) -> str | None:
        """The app container the proxy sends traffic to, as written in its upstream file."""
        proxy = proxy or self.proxy()
        if proxy is None:
            return None
        result = self.target.probe(docker.exec_(proxy.id, ["cat", self.settings.upstream_file]))
        return parse_upstream(result.stdout) if result.ok else None

    def serving(self) -> Container | None:
        """The running app container that takes traffic now (the upstream's, else the newest running)."""
        apps = self.apps()
        if not apps:
            return None
        name = self.upstream()
        return next((c for c in apps if c.name == name), apps[-1])

    # -- changes -----------------------------------------------------------------------------------------
    def switch(self, proxy: Container, container: Container) -> None:
        self.target.run(docker.exec_(proxy.id, ["sh", "-c", _SWITCH_SCRIPT, "switch", self.settings.upstream_file,
                                                container.name, str(self.settings.app_port)]))

    def reset_upstream(self, compose: Compose) -> None:
        """Rewrite the upstream through a one-off proxy container, for when no proxy runs to exec into."""
        settings = self.settings
        self.target.run(compose.run(settings.proxy_service, ["sh", "-c", _RESET_SCRIPT, "reset", settings.upstream_file,
                                                             settings.app_service, str(settings.app_port)]))

    def retire(self, containers: Sequence[Container], *, drain: int) -> None:
        """Graceful stop (SIGTERM, then ``drain`` seconds to finish in-flight requests), then remove."""
        if not containers:
            return
        ids = [c.id for c in containers]
        self.target.run(docker.stop(ids, timeout=drain))
        self.target.run(docker.remove(ids, force=True))


def parse_upstream(text: str) -> str | None:
    for line in text.splitlines():
        words = line.replace(";", " ").split()
        if len(words) >= 2 and words[0] == "server":
            return words[1].rsplit(":", 1)[0]
    return None
