"""Release hooks as command lines: a ``post_deploy`` command with the deploy's facts in its environment, bounded in
time. (``pre_switch`` commands are ``Compose.run`` of the app service in the new image: see droplet_deploy/transaction/hooks.py.)"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# The exit status of a command the watchdog stopped (droplet_deploy/transaction/watchdog.py).
TIMED_OUT = 124


def bounded(python: str, seconds: float, command: Sequence[str]) -> list[str]:
    """``command``, stopped with everything it started after ``seconds``. ``-I``: a ``droplet_deploy/`` directory in the
    user's project (the working directory) must not stand in for this package."""
    return [python, "-I", "-m", "droplet_deploy.transaction.watchdog", f"{seconds:g}", *command]


def with_environment(variables: Mapping[str, str], command: Sequence[str]) -> list[str]:
    """``command`` with ``variables`` added to its environment (``env``: visible in the echo and a dry run)."""
    return ["env", *(f"{key}={value}" for key, value in sorted(variables.items())), *command]


def post_deploy(python: str, seconds: float, variables: Mapping[str, str], command: Sequence[str]) -> list[str]:
    return bounded(python, seconds, with_environment(variables, command))
