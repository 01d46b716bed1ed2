"""The thin layer between Invoke and the steps: one line per error, no traceback, the right exit code."""

from __future__ import annotations

import functools
import os
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from invoke import Argument, Exit, Task
from invoke.exceptions import CommandTimedOut

from droplet_deploy.core import signals, validate
from droplet_deploy.core.errors import DeployError, UsageError
from droplet_deploy.core.redact import redact

if TYPE_CHECKING:  # annotations only: the task bodies import what they run
    from droplet_deploy.session import Session


def clean_errors(body: Callable[..., Any]) -> Callable[..., Any]:
    """Turn DeployError into ``invoke.Exit``; Ctrl-C, SIGTERM and SIGHUP into a one-line exit 128 + signal number
    (130, 143, 129) after the lock, history and rollout have cleaned up. DEPLOY_DEBUG=1 shows tracebacks."""

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with signals.handled():
                return body(*args, **kwargs)
        except DeployError as exc:
            if os.environ.get("DEPLOY_DEBUG"):
                raise
            raise Exit(f"error: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt as exc:
            raise Exit(interrupted_line(exc), code=signals.exit_code(exc)) from None
        except Exit:
            raise
        except Exception as exc:  # a library's failure (a timeout, a dropped connection): one line too
            if os.environ.get("DEPLOY_DEBUG"):
                raise
            raise Exit(unexpected_line(exc), code=1) from None

    return wrapper


def unexpected_line(exc: Exception) -> str:
    """An error the toolkit did not raise itself, as one line with its credentials masked: its first line
    (Invoke's timeout message quotes the whole command line below it, unmasked)."""
    if isinstance(exc, CommandTimedOut):
        text = f"`{exc.result.command}` did not finish within {exc.timeout:g}s and was stopped"
    else:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"
    return f"error: {redact(text)[:400]} (DEPLOY_DEBUG=1 shows where it came from)"


def interrupted_line(exc: BaseException) -> str:
    by = signals.describe(exc)
    return ("interrupted" if by == "Ctrl-C" else f"interrupted by {by}") + \
        ": the deploy lock was released; check `inv deploy.status`"


def session_for(c, env: str | None = None, host: str | None = None, *, accept_new_host_key: bool = False,
                verbose: bool = False) -> Session:
    from droplet_deploy.engines import open_session
    return open_session(c, env or None, host or None, accept_new_host_key=accept_new_host_key,
                        verbose=verbose or wants_verbose(c))


def wants_verbose(c) -> bool:
    """DEPLOY_VERBOSE=1 (for every task, e.g. in CI) or Invoke's own ``--echo``: echo every command and show the
    build log. A task's ``--verbose`` flag does the same for one run."""
    return os.environ.get("DEPLOY_VERBOSE", "").strip().lower() not in ("", "0", "false", "no") or \
        bool(c.config.run.echo)


# Flags that take a whole number: shown as ``=INT`` in ``--help`` (see ``CountedTask``).
COUNTED_FLAGS = frozenset({"keep", "releases", "tail"})


class _Counted(Argument):
    """A whole-number flag. Invoke's help shows ``=INT`` for an int flag, but its own int() would end a typo
    (``--tail ten``) in a traceback: the text is kept as given, and ``number_flag`` checks it in one line."""

    def set_value(self, value: Any, cast: bool = True) -> None:
        super().set_value(value, cast=False)


class CountedTask(Task):
    """A task whose whole-number flags (``COUNTED_FLAGS``) say so in ``--help``: ``--tail=INT``, not
    ``--tail=STRING`` (Invoke only knows a flag's kind from a default, and these default to "not given")."""

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        found = []
        for argument in super().get_arguments(ignore_unknown_help=ignore_unknown_help):
            name = argument.name or ""
            if name.replace("_", "-") in COUNTED_FLAGS or name in COUNTED_FLAGS:
                argument = _Counted(names=argument.names, kind=int, default=argument.default,
                                    help=argument.help, positional=argument.positional,
                                    optional=argument.optional, attr_name=argument.attr_name)
            found.append(argument)
        return found


def number_flag(name: str, value: Any, rule: validate.Range, default: float | None = None) -> Any:
    """A numeric flag, parsed once before anything runs: ``default`` when it was not given, else a number
    ``rule`` accepts. ``name`` is the flag as typed, without dashes (``health-timeout``)."""
    if value is None:
        return default
    return validate.flag(name, value, rule)


def command_flag(name: str, value: Any) -> list[str]:
    """A command given as one flag (``--cmd "python3 -m app --check"``), split into words the way a shell would."""
    example = f'e.g. --{name} "python3 -m app --check"'
    if value is None or not str(value).strip():
        raise UsageError(f"--{name} is missing: there is no command to run", hint=f"name the command, {example}")
    try:
        return shlex.split(str(value))
    except ValueError as exc:
        raise UsageError(f"--{name} {value!r} cannot be split into words: {exc}",
                         hint=f"close the quote, or quote the whole command once, {example}") from None


ENV_HELP = "environment from deploy.environments (default: deploy.default_env, or prod with --host)"
HOST_HELP = "run on this SSH host (ssh_config alias or user@host[:port]) instead of the environment's own"
VERBOSE_HELP = "echo every command and show the docker build log (also DEPLOY_VERBOSE=1)"
ACCEPT_NEW_HELP = "record the host's key if it is not known yet (like ssh's accept-new); a changed key is still refused"
