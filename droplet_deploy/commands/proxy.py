"""The proxy's scripts, run inside the nginx container (switch, reset, and the start command of the proxy the
toolkit adds to a compose file that has none): values arrive as positional parameters, never spliced into the
script text."""

from __future__ import annotations

from collections.abc import Sequence

from droplet_deploy.commands.docker import exec_

# SWITCH_UPSTREAM rewrites the proxy's upstream to one container and reloads nginx gracefully; on a config nginx
# rejects, the previous upstream is put back. `nginx -t` resolves the container's name through Docker's DNS, which
# under load has been seen to miss for a moment: the test is retried for up to 5 s before the upstream counts as
# rejected, and nginx's own words end the error line. `nginx -s reload` returns before the reload is done: for a
# while the old workers still accept connections and send them to the old upstream, so stopping the old container
# right away showed up as 502s under load. The script waits until a worker of the new configuration runs (the
# reload is done: the old workers accept nothing new, at most 15 s), then for the old workers to exit: with
# "settle" as its last parameter until they have (at most 30 s), otherwise for half a second at most, and names
# the ones still finishing requests on a `workers-before:` line. A caller that stops the old container later
# waits for those first (WAIT_WORKERS), so a long request holds up the drain, not the switch and what follows it.
# It prints the upstream file nginx accepted: the caller learns where traffic goes now without another exec.
SWITCH_UPSTREAM = (
    'f="$1"; printf "server %s:%s;\\n" "$2" "$3" > "$f.next" || exit 1; '
    'cp -f "$f" "$f.prev" 2>/dev/null; mv -f "$f.next" "$f"; '
    'n=0; until out="$(nginx -t -q 2>&1)"; do n=$((n + 1)); if [ "$n" -ge 20 ]; then '
    'mv -f "$f.prev" "$f"; echo "nginx rejected the upstream: $out" >&2; exit 1; fi; sleep 0.25; done; '
    'cat "$f"; '
    'workers() { for p in /proc/[0-9]*; do case "$(tr "\\0" " " 2>/dev/null < "$p/cmdline")" in '
    '"nginx: worker process"*) printf "%s " "${p#/proc/}";; esac; done; }; '
    'old=" $(workers)"; '
    'nginx -s reload || exit 1; '
    'i=0; while [ "$i" -lt 300 ]; do new=""; for w in $(workers); do case "$old " in *" $w "*) ;; *) new=1;; esac; '
    'done; [ -n "$new" ] && break; sleep 0.05; i=$((i + 1)); done; '
    'n=300; [ "$4" = settle ] || n=5; '
    'i=0; while :; do left=""; for w in $old; do [ -e "/proc/$w" ] && left="$left $w"; done; '
    '[ -z "$left" ] || [ "$i" -ge "$n" ] && break; sleep 0.1; i=$((i + 1)); done; '
    'echo "workers-before:$left"'
)

# WAIT_WORKERS: until the nginx workers named (pids, from a switch's `workers-before:` line) have exited, at most
# 30 s; a pid reused by another process meanwhile only makes it wait longer, within the bound.
WAIT_WORKERS = ('i=0; while [ "$i" -lt 300 ]; do left=""; for w in "$@"; do [ -e "/proc/$w" ] && left=1; done; '
                '[ -z "$left" ] && exit 0; sleep 0.1; i=$((i + 1)); done')

# RESET_UPSTREAM points the upstream back at the app *service* name, which Docker's DNS resolves to whichever app
# container runs. Needed when the proxy starts afresh: a file still naming a container that has since been
# removed (the stack was taken down after a rollout) makes nginx refuse to start at all.
RESET_UPSTREAM = 'mkdir -p "$(dirname "$1")" && printf "server %s:%s;\\n" "$2" "$3" > "$1"'


def switch(proxy: str, upstream_file: str, name: str, port: int, *, settle: bool = True) -> list[str]:
    """Inside the running proxy container: send traffic to ``name:port``. ``settle``: return once the workers of
    the configuration before have exited; otherwise once the new configuration serves (see SWITCH_UPSTREAM)."""
    return exec_(proxy, ["sh", "-c", SWITCH_UPSTREAM, "switch", upstream_file, name, str(port),
                         "settle" if settle else "return"])


def wait_workers(proxy: str, pids: Sequence[int]) -> list[str]:
    """Inside the proxy: until the workers ``pids`` (a switch's ``workers-before:``) have exited."""
    return exec_(proxy, ["sh", "-c", WAIT_WORKERS, "wait-workers", *(str(p) for p in pids)])


def reset_script(upstream_file: str, service: str, port: int) -> list[str]:
    """The command for a one-off proxy container (``compose run``): upstream back to the service name."""
    return ["sh", "-c", RESET_UPSTREAM, "reset", upstream_file, service, str(port)]


def read_upstream(proxy: str, upstream_file: str) -> list[str]:
    return exec_(proxy, ["cat", upstream_file])


# On its first start the proxy points at the app *service* name (Docker's DNS resolves it to whichever app
# container runs); a deploy then rewrites the file to name one container (SWITCH_UPSTREAM). A restart of
# the same container keeps the file it has. Values arrive as positional parameters, never spliced into the script.
_START = ('mkdir -p "$(dirname "$1")" && { [ -s "$1" ] || printf "server %s:%s;\\n" "$2" "$3" > "$1"; } '
          '&& exec nginx -g "daemon off;"')

# nginx:alpine and Debian's nginx alike: the master process named in the pid file is alive.
_ALIVE = ('for f in /run/nginx.pid /var/run/nginx.pid; do [ -s "$f" ] && kill -0 "$(cat "$f")" && exit 0; done; '
          'exit 1')


# The same for a proxy with several upstream files (the app's and the frontend's): a triple of parameters each.
_START_ROUTES = ('while [ "$#" -ge 3 ]; do mkdir -p "$(dirname "$1")" && { [ -s "$1" ] || '
                 'printf "server %s:%s;\\n" "$2" "$3" > "$1"; } || exit 1; shift 3; done; '
                 'exec nginx -g "daemon off;"')


def start_routes(*routes: tuple[str, str, int]) -> list[str]:
    """The start command of a proxy with one upstream file per ``(file, service, port)``."""
    return ["sh", "-c", _START_ROUTES, "proxy-start", *(str(v) for route in routes for v in route)]


def start(upstream_file: str, app_service: str, app_port: int) -> list[str]:
    return ["sh", "-c", _START, "proxy-start", upstream_file, app_service, str(app_port)]


def alive() -> list[str]:
    """A health check command (compose ``healthcheck.test``)."""
    return ["CMD-SHELL", _ALIVE]
