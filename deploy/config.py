"""Typed settings for one environment, read from Invoke's config (``deploy:`` in invoke.yaml).

Every key is declared once in ``FIELDS`` with its type; the environment's own section
(``deploy.environments.<name>``) may override any of them. Anything unknown, mistyped or missing is a
``ConfigError`` naming the exact key and how to fix it, raised before a single command runs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

# (type, default). ``None`` as a default means "optional, no value".
_STR, _INT, _FLOAT, _BOOL, _LIST, _DICT = "string", "integer", "number", "true/false", "list of strings", "mapping"

FIELDS: dict[str, tuple[str, Any]] = {
    "app_name": (_STR, None),
    "context": (_STR, "."),
    "dockerfile": (_STR, "Dockerfile"),
    "build_target": (_STR, None),
    "build_args": (_DICT, {}),
    "compose_file": (_STR, "docker-compose.test.yml"),
    "project": (_STR, None),
    "host": (_STR, None),
    "public_port": (_INT, 8001),
    "app_service": (_STR, "app"),
    "app_port": (_INT, 8000),
    "proxy_service": (_STR, "proxy"),
    "proxy_image": (_STR, "nginx:1.27-alpine"),
    "upstream_file": (_STR, "/etc/nginx/upstream/app.conf"),
    "app_dir": (_STR, "/srv/app"),
    "check_command": (_LIST, ["python3", "-m", "app", "--check"]),
    "health_path": (_STR, "/api/health"),
    "health_timeout": (_FLOAT, 60.0),
    "health_interval": (_FLOAT, 0.5),
    "check_endpoints": (_LIST, ["/api/health"]),
    "drain_seconds": (_INT, 15),
    "keep_images": (_INT, 5),
    "keep_releases": (_INT, 5),
    "compose_command": (_STR, "auto"),
    "state_dir": (_STR, None),
    "remote_dir": (_STR, None),
    "env_file": (_STR, None),
    "min_free_mb": (_INT, 1024),
    "lock_stale_seconds": (_FLOAT, 120.0),
    "ssh_config": (_STR, None),
    "known_hosts": (_STR, None),
    "accept_new_host_key": (_BOOL, False),
    "connect_timeout": (_FLOAT, 15.0),
    "backup_command": (_LIST, None),
    "backup_dir": (_STR, None),
    "keep_backups": (_INT, 7),
    "db_path": (_STR, "/data/app.db"),
    "restore_command": (_LIST, None),
    # Unset: on for environments with a host (production data), off for the local test stack.
    "backup_before_deploy": (_BOOL, None),
}

# Keys that only make sense at the top of ``deploy:`` rather than per environment.
_TOP_ONLY = {"environments", "default_env"}

DEFAULTS: dict[str, Any] = {
    **{key: default for key, (_, default) in FIELDS.items()},
    "default_env": "test",
    "environments": {
        "test": {
            "compose_file": "docker-compose.test.yml",
            "public_port": 8001,
        },
        "prod": {
            "compose_file": "docker-compose.beta.yml",
            "public_port": 8000,
            "host": "prod",
            "env_file": ".env",
        },
    },
}

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class Settings:
    """The resolved settings of one environment. Paths are absolute on the machine running ``inv``."""

    env: str
    root: Path
    app_name: str
    context: str
    dockerfile: str
    build_target: str | None
    build_args: dict[str, str]
    compose_file: str
    project: str
    host: str | None
    public_port: int
    app_service: str
    app_port: int
    proxy_service: str
    proxy_image: str
    upstream_file: str
    app_dir: str
    check_command: list[str]
    health_path: str
    health_timeout: float
    health_interval: float
    check_endpoints: list[str]
    drain_seconds: int
    keep_images: int
    keep_releases: int
    compose_command: str
    state_dir: str | None
    remote_dir: str | None
    env_file: str | None
    min_free_mb: int
    lock_stale_seconds: float
    ssh_config: str | None
    known_hosts: str | None
    accept_new_host_key: bool
    connect_timeout: float
    backup_command: list[str] | None
    backup_dir: str | None
    keep_backups: int
    db_path: str
    restore_command: list[str] | None
    backup_before_deploy: bool | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_remote(self) -> bool:
        return self.host is not None

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def health_url(self) -> str:
        return self.public_url + self.health_path

    def image(self, tag: str) -> str:
        return f"{self.app_name}:{tag}"


def load(raw: Mapping[str, Any] | None, env: str | None = None, *, root: Path | None = None,
         host: str | None = None) -> Settings:
    """Validate ``raw`` (the ``deploy`` config section) and resolve environment ``env``.

    ``host`` (the ``--host`` flag) wins over the environment's configured host.
    """
    raw = _plain(raw or {})
    if not isinstance(raw, dict):
        raise ConfigError("deploy", f"must be a mapping, got {_kind(raw)}", "write `deploy:` followed by indented keys in invoke.yaml")
    root = (root or Path.cwd()).resolve()

    unknown = sorted(set(raw) - set(FIELDS) - _TOP_ONLY)
    if unknown:
        raise ConfigError(f"deploy.{unknown[0]}", "unknown key", _did_you_mean(unknown[0], set(FIELDS) | _TOP_ONLY))

    environments = raw.get("environments") or {}
    if not isinstance(environments, dict):
        raise ConfigError("deploy.environments", f"must be a mapping of names to settings, got {_kind(environments)}",
                          "write e.g. `environments: {test: {public_port: 8001}}`")
    env = env or raw.get("default_env") or "test"
    if env not in environments:
        names = ", ".join(sorted(environments)) or "none"
        raise ConfigError(f"deploy.environments.{env}", "no such environment",
                          f"use one of: {names}, or add it under deploy.environments in invoke.yaml")
    section = environments[env] or {}
    if not isinstance(section, dict):
        raise ConfigError(f"deploy.environments.{env}", f"must be a mapping, got {_kind(section)}",
                          "give the environment's keys indented under its name")
    unknown = sorted(set(section) - set(FIELDS))
    if unknown:
        raise ConfigError(f"deploy.environments.{env}.{unknown[0]}", "unknown key", _did_you_mean(unknown[0], set(FIELDS)))

    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, (kind, default) in FIELDS.items():
        if key in section:
            where, value = f"deploy.environments.{env}.{key}", section[key]
        else:
            where, value = f"deploy.{key}", raw.get(key, default)
        if key == "build_args":
            # Environment build args add to (and override) the shared ones.
            base = _check(f"deploy.{key}", raw.get(key, default), kind) or {}
            value = {**base, **(_check(where, section.get(key, {}), kind) or {})}
        values[key] = _check(where, value, kind)
        origins[key] = where

    if host is not None:
        values["host"] = host or None
    _check_semantics(values, origins, root)
    if not values["project"]:
        values["project"] = f"{values['app_name']}-{env}"
    return Settings(env=env, root=root, **values)


def _check(where: str, value: Any, kind: str) -> Any:
    if value is None:
        return None
    ok = {
        _STR: isinstance(value, str),
        _INT: isinstance(value, int) and not isinstance(value, bool),
        _FLOAT: isinstance(value, (int, float)) and not isinstance(value, bool),
        _BOOL: isinstance(value, bool),
        _LIST: isinstance(value, list) and all(isinstance(v, str) for v in value),
        _DICT: isinstance(value, dict) and all(isinstance(k, str) for k in value),
    }[kind]
    if not ok:
        article = "an" if kind[0] in "aeiou" else "a"
        raise ConfigError(where, f"must be {article} {kind}, got {_kind(value)} {_show(value)}",
                          f"set {where} to {article} {kind}")
    if kind == _FLOAT:
        return float(value)
    if kind == _DICT:
        bad = [k for k, v in value.items() if not isinstance(v, (str, int, float)) or isinstance(v, bool)]
        if bad:
            raise ConfigError(f"{where}.{bad[0]}", "must be a string or number", f"quote the value of {where}.{bad[0]}")
        return {k: str(v) for k, v in value.items()}
    if kind == _LIST:
        return list(value)
    return value


def _check_semantics(values: dict[str, Any], origins: dict[str, str], root: Path) -> None:
    name = values["app_name"]
    if not name:
        raise ConfigError(origins["app_name"], "missing", "set deploy.app_name in invoke.yaml, e.g. `app_name: myapp` (it names the image)")
    if not _NAME_RE.match(name):
        raise ConfigError(origins["app_name"], f"{name!r} is not a valid image name",
                          "use lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")
    if values["project"] and not _NAME_RE.match(values["project"]):
        raise ConfigError(origins["project"], f"{values['project']!r} is not a valid compose project name",
                          "use lowercase letters, digits, '_' or '-'")
    for key in ("public_port", "app_port"):
        if not 1 <= values[key] <= 65535:
            raise ConfigError(origins[key], f"{values[key]} is out of range", "use a port from 1 to 65535")
    for key in ("health_timeout", "health_interval", "connect_timeout"):
        if values[key] <= 0:
            raise ConfigError(origins[key], f"{values[key]:g} must be greater than 0", f"set {origins[key]} to a positive number of seconds")
    if values["lock_stale_seconds"] < 10:
        raise ConfigError(origins["lock_stale_seconds"], f"{values['lock_stale_seconds']:g} is too short",
                          "use at least 10 seconds: a live deploy's heartbeat must fit several times into it")
    for key in ("keep_images", "keep_releases", "keep_backups"):
        if values[key] < 1:
            raise ConfigError(origins[key], f"{values[key]} must be at least 1", "keep at least the release that is running")
    if values["drain_seconds"] < 0:
        raise ConfigError(origins["drain_seconds"], "must not be negative", "use 0 to stop the old container at once")
    if values["compose_command"] not in ("auto", "docker compose", "docker-compose"):
        raise ConfigError(origins["compose_command"], f"{values['compose_command']!r} is not supported",
                          "use auto, 'docker compose' (v2) or docker-compose (v1)")
    if not values["health_path"].startswith("/"):
        raise ConfigError(origins["health_path"], f"{values['health_path']!r} must start with '/'", "write e.g. health_path: /api/health")
    for path in values["check_endpoints"]:
        if not path.startswith("/"):
            raise ConfigError(origins["check_endpoints"], f"{path!r} must start with '/'", "list paths like /login")
    for key in ("compose_file", "dockerfile"):
        rel = values[key] if key == "compose_file" else os.path.join(values["context"], values[key])
        if not (root / rel).is_file():
            raise ConfigError(origins[key],
                              f"file {rel!r} not found in {root}", f"create it or point {key} at the right file")
    if values["host"] is not None and not values["host"].strip():
        values["host"] = None


def _did_you_mean(key: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=1)
    return f"did you mean {close[0]!r}?" if close else "remove it; known keys are listed in docs/configuration.md"


def _plain(value: Any) -> Any:
    """Invoke hands out DataProxy objects; turn them into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _kind(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "true/false", int: "integer", float: "number"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
