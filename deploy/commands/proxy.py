"""The command the toolkit's own proxy container runs. argv only, no I/O."""

from __future__ import annotations

# On its first start the proxy points at the app *service* name (Docker's DNS resolves it to whichever app
# container runs); a deploy then rewrites the file to name one container (see stack._SWITCH_SCRIPT). A restart of
# the same container keeps the file it has. Values arrive as positional parameters, never spliced into the script.
_START = ('mkdir -p "$(dirname "$1")" && { [ -s "$1" ] || printf "server %s:%s;\\n" "$2" "$3" > "$1"; } '
          '&& exec nginx -g "daemon off;"')

# nginx:alpine and Debian's nginx alike: the master process named in the pid file is alive.
_ALIVE = ('for f in /run/nginx.pid /var/run/nginx.pid; do [ -s "$f" ] && kill -0 "$(cat "$f")" && exit 0; done; '
          'exit 1')


def start(upstream_file: str, app_service: str, app_port: int) -> list[str]:
    return ["sh", "-c", _START, "proxy-start", upstream_file, app_service, str(app_port)]


def alive() -> list[str]:
    """A health check command (compose ``healthcheck.test``)."""
    return ["CMD-SHELL", _ALIVE]
