"""``python -I -m droplet_deploy.transaction.watchdog SECONDS COMMAND...``: run COMMAND for at most SECONDS, then
stop it and everything it started. Exit status: the command's, 124 on timeout (as coreutils' ``timeout``), 127 when it cannot
be started, 128 + N when this process gets signal N.

Why not Invoke's own ``timeout``: it kills only the shell it started. A ``sh -c "curl ..."`` hook's curl lives on,
and Invoke keeps waiting for output until curl is done, so a hung webhook would hold the deploy for as long as
curl likes. Here the command runs in a session of its own, and one kill reaches its whole process group. Standard
library only, and nothing from this package: it runs as its own process.

The command finds the toolkit's own commands (``droplet-deploy notify``) whether or not its virtualenv is active:
the interpreter's directory is added at the end of PATH, so it shadows nothing the user has.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence

TIMED_OUT = 124
CANNOT_RUN = 127


def run(seconds: float, command: Sequence[str]) -> int:
    try:
        # The one process this package starts itself: the configured hook, as argv (no shell), in a session of
        # its own. Everything else runs through transport.target.
        child = subprocess.Popen(list(command), start_new_session=True, env=environment())  # noqa: S603
    except OSError as exc:
        print(f"cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return CANNOT_RUN

    def stop() -> None:
        try:
            os.killpg(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def on_signal(signum: int, _frame) -> None:
        stop()
        sys.exit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    try:
        return child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        stop()
        child.wait()
        print(f"timed out after {seconds:g}s", file=sys.stderr)
        return TIMED_OUT


def environment() -> dict[str, str]:
    """This process's environment with the interpreter's directory last on PATH, where it was not there yet."""
    env = dict(os.environ)
    own = os.path.dirname(sys.executable)
    path = [part for part in env.get("PATH", "").split(os.pathsep) if part]
    if own and own not in path:
        env["PATH"] = os.pathsep.join([*path, own])
    return env


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print("usage: python -I -m droplet_deploy.transaction.watchdog SECONDS COMMAND...", file=sys.stderr)
        return 2
    return run(float(argv[0]), argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
