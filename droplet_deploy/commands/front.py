"""The front proxy's commands on its host, as argv: the Caddy container, its config reload through the admin API,
the route files every environment keeps in the front directory, and the certificates in Caddy's storage."""

from __future__ import annotations

# Every container of one front proxy carries this label, valued with its name (front_name).
LABEL = "org.droplet-deploy.front"
# Where the front directory (routes, caddy.json, CA bundles, certificate files) appears inside the container.
MOUNT = "/etc/droplet-front"
CONFIG_FILE = "caddy.json"
CERTIFICATES = "/data/caddy/certificates"

# Each route file's JSON on a line of its own; none: nothing.
_READ_ROUTES = 'for f in "$1"/routes/*.json; do [ -f "$f" ] && { cat "$f"; echo; }; done; exit 0'
# The names Caddy holds a certificate for: its storage keeps <issuer>/<name>/<name>.crt (a wildcard as wildcard_.x).
_CERTIFIED = ('[ -d "$1" ] || exit 0; find "$1" -mindepth 3 -maxdepth 3 -name "*.crt" -type f '
              '-exec basename {} .crt \\;')
# Copy a file the user keeps on the host into the front directory, readable by root alone (a private key).
_INSTALL_PRIVATE = 'umask 077 && mkdir -p "$(dirname "$2")" && cp -f -- "$1" "$2.tmp" && chmod 600 "$2.tmp" && mv -f -- "$2.tmp" "$2"'


def containers(name: str) -> list[str]:
    """Every container of front proxy ``name``, running or not: id, state, image id, created, one per line."""
    return ["docker", "ps", "-a", "--no-trunc", "--filter", f"label={LABEL}={name}",
            "--format", "{{.ID}} {{.State}} {{.Names}}"]


def image_id(container: str) -> list[str]:
    return ["docker", "inspect", "--format", "{{.Image}}", container]


def wanted_image_id(image: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Id}}", image]


def run(name: str, container: str, image: str, front_dir: str) -> list[str]:
    """Start one front proxy container: on the host's network (it binds 80/443 itself, sees clients' real addresses
    and reaches every environment's proxy on its loopback port), back after a reboot, certificates and ACME
    account in a named volume, the config the toolkit wrote read from the front directory."""
    return ["docker", "run", "-d", "--name", container, "--label", f"{LABEL}={name}",
            "--restart", "unless-stopped", "--network", "host",
            "-v", f"{name}-data:/data", "-v", f"{name}-config:/config", "-v", f"{front_dir}:{MOUNT}:ro",
            image, "caddy", "run", "--config", f"{MOUNT}/{CONFIG_FILE}"]


def start(container: str) -> list[str]:
    return ["docker", "start", container]


def stop(container: str, grace: int) -> list[str]:
    return ["docker", "stop", "-t", str(grace), container]


def remove(container: str) -> list[str]:
    return ["docker", "rm", container]


def remove_forced(container: str) -> list[str]:
    return ["docker", "rm", "-f", container]


def reload(container: str, admin: str) -> list[str]:
    """POST the config file to the running Caddy's admin API (``caddy reload``): the new config replaces the old
    in the same process, listeners and open connections kept."""
    return ["docker", "exec", container, "caddy", "reload", "--config", f"{MOUNT}/{CONFIG_FILE}",
            "--address", admin, "--force"]


def admin_ready(container: str, admin: str) -> list[str]:
    """Exit 0 once the admin API of ``container`` answers (the Caddy binary itself asks it, no curl needed)."""
    return ["docker", "exec", container, "caddy", "reload", "--config", f"{MOUNT}/{CONFIG_FILE}",
            "--address", admin]


def read_routes(front_dir: str) -> list[str]:
    return ["sh", "-c", _READ_ROUTES, "front-routes", front_dir]


def remove_route(path: str) -> list[str]:
    return ["rm", "-f", "--", path]


def certified(container: str) -> list[str]:
    return ["docker", "exec", container, "sh", "-c", _CERTIFIED, "front-certified", CERTIFICATES]


def logs_since(container: str, since: str) -> list[str]:
    return ["docker", "logs", "--since", since, container]


def install_private(source: str, path: str) -> list[str]:
    return ["sh", "-c", _INSTALL_PRIVATE, "front-install", source, path]


def now() -> list[str]:
    """The host's clock, as ``docker logs --since`` reads it."""
    return ["date", "-u", "+%Y-%m-%dT%H:%M:%S.%NZ"]
