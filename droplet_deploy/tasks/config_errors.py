"""One line for a configuration Invoke itself cannot load.

Invoke reads the project's ``invoke.yaml``, the runtime file (``-f FILE``, ``INVOKE_RUNTIME_CONFIG``) and the
``INVOKE_*`` variables after it has imported ``tasks.py`` and outside any task, so ``clean_errors`` never sees
a failure there: a YAML syntax error, ``deploy: 5`` or ``INVOKE_DEPLOY_HEALTH_TIMEOUT=soon`` ends in Invoke's
traceback. Invoke offers no hook for that (its ``Program`` and ``Config`` are chosen before ``tasks.py`` is
imported), so importing ``deploy.tasks`` installs a ``sys.excepthook``: it only runs for an exception nothing
caught, and it turns one raised while Invoke loaded its configuration into the toolkit's one ``config error:``
line and exit code 2. Anything else, and everything under ``DEPLOY_DEBUG=1``, goes to the previous hook.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from types import FrameType, TracebackType
from typing import Any

from droplet_deploy.core.config_keys import DEFAULTS, describe, kind_of
from droplet_deploy.core.errors import ConfigError

_FILES = ("system", "user", "project", "runtime")


def install() -> None:
    """Install the hook once, in front of whatever hook was there."""
    if getattr(sys.excepthook, "renders_config_errors", False):
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        error = None if os.environ.get("DEPLOY_DEBUG") else explain(exc, tb)
        if error is None:
            previous(kind, exc, tb)
            return
        print(f"error: {error}", file=sys.stderr, flush=True)
        sys.exit(error.exit_code)  # SystemExit from an excepthook ends the process with this code

    hook.renders_config_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def explain(exc: BaseException, tb: TracebackType | None) -> ConfigError | None:
    """The one-line error for a failure while Invoke loaded its configuration; None for any other failure."""
    frames = list(_frames(tb))
    if any(_module(f) == "invoke.tasks" for f in frames):
        return None  # raised inside a task: not a loading problem, and clean_errors had its chance
    loading = next((f for f in frames if _module(f) == "invoke.config"), None)
    if loading is None:
        return None
    if _is_yaml_error(exc):
        return yaml_error(exc)
    setting = next((f for f in frames if _module(f) == "invoke.env" and f.f_code.co_name == "_path_set"), None)
    if setting is not None:
        return env_var_error(setting)
    return shape_error(loading.f_locals.get("self")) or ConfigError(
        "invoke configuration", f"could not be loaded: {type(exc).__name__}: {_one_line(str(exc))}",
        "run again with DEPLOY_DEBUG=1 for Invoke's traceback")


def yaml_error(exc: BaseException) -> ConfigError:
    """``file: invalid YAML at line L, column C: problem (context: fix)``. Marks count from 0; editors from 1."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return ConfigError("invoke configuration", f"invalid YAML: {_one_line(str(exc))}",
                           "fix the YAML syntax; check brackets, quotes and indentation")
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    started = f"{context} at {_at(context_mark)}: " if context and context_mark else ""
    return ConfigError(mark.name, f"invalid YAML at {_at(mark)}: {_one_line(problem)}",
                       f"{started}fix the YAML there; check brackets, quotes and indentation")


def env_var_error(frame: FrameType) -> ConfigError:
    """An ``INVOKE_*`` variable that Invoke could not cast to the type of the key it overrides."""
    env, key_path, value = frame.f_locals.get("self"), frame.f_locals.get("key_path") or [], frame.f_locals.get("value")
    name = (getattr(env, "_prefix", None) or "") + "_".join(key_path).upper()
    dotted = ".".join(key_path)
    try:
        old = env._path_get(key_path)  # type: ignore[union-attr]
    except (AttributeError, KeyError, TypeError):
        old = None
    kind = kind_of(old)
    if isinstance(old, (list, tuple, dict)):
        return ConfigError(name, f"{dotted} is a {kind} and cannot come from an environment variable",
                           f"unset {name} and set {dotted} in invoke.yaml")
    return ConfigError(name, f"{value!r} cannot be read as {dotted}, which takes {'an' if kind[0] in 'aeiou' else 'a'} "
                             f"{kind}", f"set {name} to a value like {old!r}, or unset it")


def shape_error(config: Any) -> ConfigError | None:
    """A loaded file whose top level, ``deploy:`` or another section is not a mapping where the merge needs one."""
    shape = {**_invoke_defaults(), "deploy": DEFAULTS}
    for name in _FILES:
        path, data = getattr(config, f"_{name}_path", None), getattr(config, f"_{name}", None)
        if path is None or data is None:
            continue
        found = _clash(data, shape, ())
        if found is None:
            continue
        keys, value = found
        if not keys:
            return ConfigError(path, f"must hold a mapping of settings, got {describe(value)}",
                               "start the file with `deploy:` and indent its keys under it")
        return ConfigError(".".join(keys), f"must be a mapping, got {describe(value)} (in {path})",
                           f"write `{keys[-1]}:` followed by indented keys")
    return None


def _clash(data: Any, shape: dict, keys: tuple[str, ...]) -> tuple[tuple[str, ...], Any] | None:
    """The first place where ``shape`` has a mapping and ``data`` something else: (keys, value)."""
    if not isinstance(data, dict):
        return keys, data
    for key, expected in shape.items():
        if isinstance(expected, dict) and key in data:
            found = _clash(data[key], expected, (*keys, str(key)))
            if found is not None:
                return found
    return None


def _invoke_defaults() -> dict:
    from invoke import Config

    return Config.global_defaults()


def _frames(tb: TracebackType | None) -> Iterator[FrameType]:
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _module(frame: FrameType) -> str:
    return str(frame.f_globals.get("__name__", ""))


def _is_yaml_error(exc: BaseException) -> bool:
    # Invoke may load YAML with its vendored copy (invoke.vendor.yaml) or with PyYAML: match either by name.
    return any(cls.__name__ == "YAMLError" and "yaml" in cls.__module__ for cls in type(exc).__mro__)


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
