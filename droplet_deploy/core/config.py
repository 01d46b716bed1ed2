"""Typed settings for one environment, read from Invoke's config (``deploy:`` in invoke.yaml).

Every key is declared once in ``FIELDS`` with its type; the environment's own section
(``deploy.environments.<name>``) may override any of them. Anything unknown, mistyped or missing is a
``ConfigError`` naming the exact key and how to fix it, raised before a single command runs.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from droplet_deploy.core import front_settings, validate
from droplet_deploy.core.config_keys import (
    BOOL,
    DICT,
    FIELDS,
    FLOAT,
    INT,
    LIST,
    STR,
    article,
    describe,
    kind_of,
    show,
)
from droplet_deploy.core.errors import ConfigError

# Keys that only make sense at the top of ``deploy:`` rather than per environment.
_TOP_ONLY = {"environments", "default_env"}

# Keys with a default that may still be set to null, and what null means there.
_NULL_MEANS = {"db_path": "no database", "swarm_registry_image": "whole images by docker save | docker load"}

# What each numeric key measures; the ranges are the ones the task flags use too (deploy.validate).
RANGES: dict[str, validate.Range] = {
    "public_port": validate.PORT,
    "app_port": validate.PORT,
    "frontend_port": validate.PORT,
    "health_timeout": validate.TIMEOUT,
    "health_interval": validate.INTERVAL,
    "connect_timeout": validate.TIMEOUT,
    "drain_seconds": validate.DRAIN,
    "keep_images": validate.KEEP,
    "keep_releases": validate.KEEP,
    "keep_backups": validate.KEEP,
    "min_free_mb": validate.MEGABYTES,
    "clean_below_mb": validate.MEGABYTES,
    "lock_stale_seconds": validate.LOCK_STALE,
    "replicas": validate.REPLICAS,
    "http_port": validate.PORT,
    "https_port": validate.PORT,
    "front_admin_port": validate.PORT,
    "certificate_timeout": validate.TIMEOUT,
    "max_body_mb": validate.MEGABYTES,
    "read_timeout": validate.TIMEOUT,
    "renew_check_interval": validate.TIMEOUT,
    "command_timeout": validate.TIMEOUT,
    "build_timeout": validate.TIMEOUT,
    "pre_switch_timeout": validate.TIMEOUT,
    "link_timeout": validate.LINK,
}
# Settings a config file may not turn on, with the flag that does it for one run. accept_new_host_key in a file
# would accept any key on every fresh machine (a new CI runner each time): trust on first use, forever.
_FLAG_ONLY = {"accept_new_host_key": "--accept-new-host-key"}


# How deploy.health may prove the revision (the setting health_revision).
HEALTH_REVISION_MODES = ("auto", "body", "label")

# Where a stack can run (the setting engine); deploy.backend.open_session picks the backend from it.
ENGINES = ("compose", "swarm")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
# Compose's own rule for service names. They are written into the proxy's upstream file (`server <name>:<port>;`),
# so nothing else may pass.
_SERVICE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
# nginx includes the upstream file by this path and shell scripts in the proxy write it: plain path characters only.
_PLAIN_PATH_RE = re.compile(r"^(/[A-Za-z0-9_.+@-]+)+$")
_BUILD_ARG_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_URL_UNSAFE_RE = re.compile(r"[\s\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Hooks:
    """``deploy.hooks``: commands (argv lists) run around a release (deploy.hooks runs them)."""

    #: In a one-off container of the new image, after verify.build and before any traffic moves (migrations).
    pre_switch: tuple[tuple[str, ...], ...] = ()
    #: Where ``inv`` runs, after every deploy and rollback, whatever its result (notifications).
    post_deploy: tuple[tuple[str, ...], ...] = ()
    #: Seconds each post_deploy command may take before it is stopped.
    post_deploy_timeout: float = 30.0


# Each hook key and what it holds, for the error on an unknown one.
HOOK_KEYS = ("pre_switch", "post_deploy", "post_deploy_timeout")


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
    health_revision: str
    check_endpoints: list[str]
    health_host: str | None
    services_first: list[str]
    frontend_service: str | None
    frontend_port: int
    api_path: str
    drain_seconds: int
    keep_images: int
    keep_releases: int
    compose_command: str
    state_dir: str | None
    remote_dir: str | None
    env_file: str | None
    min_free_mb: int
    clean_below_mb: int
    lock_stale_seconds: float
    ssh_config: str | None
    known_hosts: str | None
    accept_new_host_key: bool
    connect_timeout: float
    backup_command: list[str] | None
    backup_dir: str | None
    keep_backups: int
    db_path: str | None
    restore_command: list[str] | None
    backup_before_deploy: bool | None
    hooks: Hooks = field(default_factory=Hooks)
    engine: str = "compose"
    replicas: int = 2
    swarm_nodes: list[str] = field(default_factory=list)
    swarm_registry_image: str | None = "registry:2"
    # The front proxy (checked in core/front_settings.py).
    hosts: list[str] = field(default_factory=list)
    path_prefix: str | None = None
    http_port: int = 80
    https_port: int = 443
    tls: str = "auto"
    acme_directory: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_email: str | None = None
    acme_ca_bundle: str | None = None
    tls_certificate: str | None = None
    tls_key: str | None = None
    hsts: bool = False
    certificate_timeout: float = 90.0
    front_name: str = "droplet-front"
    front_image: str = "caddy:2"
    front_dir: str = "/var/lib/droplet-deploy/front"
    front_bind: str | None = None
    front_admin_port: int = 2019
    max_body_mb: int = 100
    read_timeout: float = 60.0
    gzip: bool = True
    renew_check_interval: float = 600.0
    command_timeout: float = 900.0
    build_timeout: float = 3600.0
    pre_switch_timeout: float = 3600.0
    link_timeout: float = 15.0
    backup_service: str | None = None
    db_kind: str | None = None
    db_user: str | None = None
    db_name: str | None = None
    backup_copy: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    sibling_projects: tuple[str, ...] = ()

    @property
    def is_remote(self) -> bool:
        return self.host is not None

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.public_port}"

    @property
    def health_url(self) -> str:
        return self.public_url + self.health_path

    @property
    def probe_host(self) -> str:
        """The Host header health probes send, on a container's own address and through the public port alike:
        an app that checks it (Django, Rails) answers every other name with 400."""
        if self.health_host:
            return self.health_host
        return self.hosts[0] if self.hosts else "localhost"

    def image(self, tag: str) -> str:
        return f"{self.app_name}:{tag}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def host_dir(self) -> str:
        """The base directory on the host (``remote_dir``, default ``/srv/<app_name>``)."""
        return self.remote_dir or f"/srv/{self.app_name}"

    @property
    def state_path(self) -> str:
        """Where the lock, the history and the release's kept files live: on the host, or in the project root."""
        if self.state_dir:
            base = self.host_dir if self.is_remote else str(self.root)
            return posixpath.join(base, self.state_dir)
        if self.is_remote:
            return posixpath.join(self.host_dir, "state")
        return str(self.root / ".deploy" / self.env)

    @property
    def env_file_path(self) -> str | None:
        """The absolute path of the env file where the stack runs, if it reads one.

        Compose reads it from there: it is never copied or linked into a release, i.e. into the build context.
        A relative name lives in ``<remote_dir>/shared/`` on a host and in the project root locally.
        """
        name = self.env_file
        if not name:
            return None
        if name.startswith("/"):
            return name
        if self.is_remote:
            return f"{self.host_dir.rstrip('/')}/shared/{name}"
        return str(self.root / name)


def load(raw: Mapping[str, Any] | None, env: str | None = None, *, root: Path | None = None,
         host: str | None = None) -> Settings:
    """Validate ``raw`` (the ``deploy`` config section) and resolve environment ``env``.

    ``host`` (the ``--host`` flag) wins over the environment's configured host.
    """
    raw = _deploy_section(raw)
    root = (root or Path.cwd()).resolve()
    _refuse_unknown_keys(raw)
    env, section = _environment(raw, env)
    _refuse_flag_only(raw, section, env)
    values, origins = _resolve(raw, section, env)
    if host is not None:
        values["host"] = host or None
    _check_semantics(values, origins, root)
    if not values["project"]:
        values["project"] = f"{values['app_name']}-{env}"
    return Settings(env=env, root=root, **values, sibling_projects=_sibling_projects(raw, env))


def _sibling_projects(raw: dict[str, Any], env: str) -> tuple[str, ...]:
    """The compose projects of this config's other environments (a staging beside production): stacks the
    toolkit deploys itself, never one to take over. Read as written: each is validated when it is deployed."""
    found = []
    for name, section in (raw.get("environments") or {}).items():
        section = section if isinstance(section, dict) else {}
        if name == env:
            continue
        project = section.get("project") or f"{section.get('app_name') or raw.get('app_name')}-{name}"
        if isinstance(project, str):
            found.append(project)
    return tuple(found)


def _deploy_section(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    raw = _plain(raw or {})
    if not isinstance(raw, dict):
        raise ConfigError("deploy", f"must be a mapping, got {kind_of(raw)}", "write `deploy:` followed by indented keys in invoke.yaml")
    return raw


def _refuse_unknown_keys(raw: dict[str, Any]) -> None:
    unknown = sorted(set(raw) - set(FIELDS) - _TOP_ONLY)
    if unknown:
        raise ConfigError(f"deploy.{unknown[0]}", "unknown key", _did_you_mean(unknown[0], set(FIELDS) | _TOP_ONLY))


def _environment(raw: dict[str, Any], env: str | None) -> tuple[str, dict[str, Any]]:
    """The chosen environment's name (``env``, else ``default_env``, else ``test``) and its own section."""
    environments = raw.get("environments") or {}
    if not isinstance(environments, dict):
        raise ConfigError("deploy.environments", f"must be a mapping of names to settings, got {kind_of(environments)}",
                          "write e.g. `environments: {test: {public_port: 8001}}`")
    env = env or _check("deploy.default_env", raw.get("default_env"), STR) or "test"
    if env not in environments:
        names = ", ".join(sorted(environments)) or "none"
        raise ConfigError(f"deploy.environments.{env}", "no such environment",
                          f"use one of: {names}, or add it under deploy.environments in invoke.yaml")
    section = environments[env] or {}
    if not isinstance(section, dict):
        raise ConfigError(f"deploy.environments.{env}", f"must be a mapping, got {kind_of(section)}",
                          "give the environment's keys indented under its name")
    unknown = sorted(set(section) - set(FIELDS))
    if unknown:
        raise ConfigError(f"deploy.environments.{env}.{unknown[0]}", "unknown key", _did_you_mean(unknown[0], set(FIELDS)))
    return env, section


def _refuse_flag_only(raw: dict[str, Any], section: dict[str, Any], env: str) -> None:
    for key, flag in _FLAG_ONLY.items():
        for where, holder in ((f"deploy.environments.{env}.{key}", section), (f"deploy.{key}", raw)):
            if holder.get(key) not in (None, False):
                raise ConfigError(where, "cannot be set in a config file (it would accept a new host key on "
                                  "every fresh machine)", f"remove it and pass {flag} on the command line for the "
                                  "one run that should record the key")


def _resolve(raw: dict[str, Any], section: dict[str, Any], env: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Every key's checked value and the config key it came from (its origin, named in later errors)."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for key, (kind, default) in FIELDS.items():
        where, value = _given(raw, section, env, key, default)
        if key == "hooks":
            values[key], origins[key] = _hooks(raw, section, env), where
            continue
        if key == "build_args":
            value = _merged_build_args(raw, section, where, kind, default)
        values[key] = _typed(where, value, key, kind, default)
        origins[key] = where
    return values, origins


def _given(raw: dict[str, Any], section: dict[str, Any], env: str, key: str, default: Any) -> tuple[str, Any]:
    """The environment's own value if it sets ``key``, else the shared one, else the default."""
    if key in section:
        return f"deploy.environments.{env}.{key}", section[key]
    return f"deploy.{key}", raw.get(key, default)


def _merged_build_args(raw: dict[str, Any], section: dict[str, Any], where: str, kind: str,
                       default: Any) -> dict[str, str]:
    # Environment build args add to (and override) the shared ones.
    base = _check("deploy.build_args", raw.get("build_args", default), kind) or {}
    return {**base, **(_check(where, section.get("build_args", {}), kind) or {})}


def _hooks(raw: dict[str, Any], section: dict[str, Any], env: str) -> Hooks:
    """The shared hooks, each one the environment sets replacing the shared one of that name."""
    given = {**_hook_entries("deploy.hooks", raw.get("hooks", {})),
             **_hook_entries(f"deploy.environments.{env}.hooks", section.get("hooks", {}))}
    hooks = Hooks()
    if "pre_switch" in given:
        hooks = dataclasses.replace(hooks, pre_switch=_hook_commands(*given["pre_switch"]))
    if "post_deploy" in given:
        hooks = dataclasses.replace(hooks, post_deploy=_hook_commands(*given["post_deploy"]))
    if "post_deploy_timeout" in given:
        where, value = given["post_deploy_timeout"]
        hooks = dataclasses.replace(hooks, post_deploy_timeout=float(validate.setting(where, value, validate.TIMEOUT)))
    return hooks


def _hook_entries(where: str, value: Any) -> dict[str, tuple[str, Any]]:
    """Each hook of one ``hooks:`` mapping, with the key it was given under."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(where, f"must be a mapping of hooks, got {describe(value)}",
                          'write e.g. `hooks: {pre_switch: [["python3", "-m", "app", "migrate"]]}`')
    unknown = sorted(set(value) - set(HOOK_KEYS))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", "unknown hook", f"use one of: {', '.join(HOOK_KEYS)}")
    return {key: (f"{where}.{key}", item) for key, item in value.items()}


def _hook_commands(where: str, value: Any) -> tuple[tuple[str, ...], ...]:
    """A hook's commands: a list of argv lists, each naming a program."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(where, f"must be a list of commands, got {describe(value)}",
                          'write a list of argv lists, e.g. [["python3", "-m", "app", "migrate"]]')
    commands = []
    for index, command in enumerate(value):
        at = f"{where}[{index}]"
        if not (isinstance(command, list) and all(isinstance(word, str) for word in command)):
            raise ConfigError(at, f"must be a list of strings (the program and its arguments), got {describe(command)}",
                              'write it as an argv list, e.g. ["python3", "-m", "app", "migrate"]')
        if not command or not command[0].strip():
            raise ConfigError(at, "names no program to run", 'write the program and its arguments, e.g. '
                              '["python3", "-m", "app", "migrate"]')
        commands.append(tuple(command))
    return tuple(commands)


def _typed(where: str, value: Any, key: str, kind: str, default: Any) -> Any:
    if value is None and default is not None and key not in _NULL_MEANS:
        raise ConfigError(where, f"must be {article(kind)} {kind}, got null",
                          f"remove {where} to use the default {show(default)}")
    checked = _check(where, value, kind)
    if key in RANGES:
        return validate.setting(where, checked, RANGES[key])
    return checked


# Booleans are ints to Python; a config value `true` is never a number here.
_IS_KIND: dict[str, Callable[[Any], bool]] = {
    STR: lambda value: isinstance(value, str),
    INT: lambda value: isinstance(value, int) and not isinstance(value, bool),
    FLOAT: lambda value: isinstance(value, (int, float)) and not isinstance(value, bool),
    BOOL: lambda value: isinstance(value, bool),
    LIST: lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value),
    DICT: lambda value: isinstance(value, dict) and all(isinstance(k, str) for k in value),
}


def _check(where: str, value: Any, kind: str) -> Any:
    if value is None:
        return None
    if not _IS_KIND[kind](value):
        a = article(kind)
        raise ConfigError(where, f"must be {a} {kind}, got {kind_of(value)} {show(value)}",
                          f"set {where} to {a} {kind}")
    return _normalised(where, value, kind)


def _normalised(where: str, value: Any, kind: str) -> Any:
    if kind == FLOAT:
        return float(value)
    if kind == DICT:
        return _string_values(where, value)
    if kind == LIST:
        return list(value)
    return value


def _string_values(where: str, mapping: dict[str, Any]) -> dict[str, str]:
    bad = [k for k, v in mapping.items() if not isinstance(v, (str, int, float)) or isinstance(v, bool)]
    if bad:
        raise ConfigError(f"{where}.{bad[0]}", "must be a string or number", f"quote the value of {where}.{bad[0]}")
    return {k: str(v) for k, v in mapping.items()}


def _check_semantics(values: dict[str, Any], origins: dict[str, str], root: Path) -> None:
    """Values of the right type that still cannot work; each topic is one small check."""
    for check in (_check_names, _check_commands, _check_urls, _check_paths, _check_choices, _check_database,
                  _check_copies, front_settings.check):
        check(values, origins)
    _check_files(values, origins, root)
    if values["host"] is not None and not values["host"].strip():
        values["host"] = None


_HOST_HEADER_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$")


def _check_health_host(values: dict[str, Any], origins: dict[str, str]) -> None:
    host = values["health_host"]
    if host is not None and not _HOST_HEADER_RE.match(host):
        raise ConfigError(origins["health_host"], f"{host!r} is not a host name",
                          "write the name the app accepts, e.g. health_host: localhost or health_host: example.com")


def _check_names(values: dict[str, Any], origins: dict[str, str]) -> None:
    _check_health_host(values, origins)
    name = values["app_name"]
    if not name:
        raise ConfigError(origins["app_name"], "missing", "set deploy.app_name in invoke.yaml, e.g. `app_name: myapp` (it names the image)")
    if not _NAME_RE.match(name):
        raise ConfigError(origins["app_name"], f"{name!r} is not a valid image name",
                          "use lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")
    if values["project"] and not _NAME_RE.match(values["project"]):
        raise ConfigError(origins["project"], f"{values['project']!r} is not a valid compose project name",
                          "use lowercase letters, digits, '_' or '-'")
    for key in ("app_service", "proxy_service"):
        if not _SERVICE_RE.match(values[key]):
            raise ConfigError(origins[key], f"{values[key]!r} is not a compose service name",
                              "use the service's name from the compose file: letters, digits, '.', '_' or '-'")
    if values["app_service"] == values["proxy_service"]:
        raise ConfigError(origins["proxy_service"], f"is the same service as app_service ({values['app_service']!r})",
                          "the proxy and the app are two services of the compose file; name each")
    bad = [arg for arg in values["build_args"] if not _BUILD_ARG_RE.match(arg)]
    if bad:
        raise ConfigError(f"{origins['build_args']}.{bad[0]}", "is not a build argument name",
                          "use letters, digits and '_', as in the Dockerfile's ARG line")


def _check_commands(values: dict[str, Any], origins: dict[str, str]) -> None:
    for key in ("check_command", "backup_command", "restore_command"):
        command = values[key]
        if command is not None and (not command or not command[0].strip()):
            fix = ('write the program and its arguments, e.g. ["python3", "-m", "app", "--check"]'
                   if key == "check_command" else f"remove {key} to use the built-in SQLite copy, or name a program")
            raise ConfigError(origins[key], "names no program to run", fix)


def _check_urls(values: dict[str, Any], origins: dict[str, str]) -> None:
    for key, paths in (("health_path", [values["health_path"]]), ("check_endpoints", values["check_endpoints"]),
                       ("api_path", [values["api_path"]])):
        for path in paths:
            if not path.startswith("/"):
                raise ConfigError(origins[key], f"{path!r} must start with '/'",
                                  "write e.g. health_path: /api/health" if key == "health_path" else "list paths like /login")
            if _URL_UNSAFE_RE.search(path):
                raise ConfigError(origins[key], f"{path!r} holds a space or control character",
                                  "percent-encode it, e.g. %20 for a space")


    if not re.match(r"^/[A-Za-z0-9_./-]*$", values["api_path"]):
        raise ConfigError(origins["api_path"], f"{values['api_path']!r} holds characters nginx would misread",
                          "write a plain path prefix, e.g. api_path: /api/")


def _check_paths(values: dict[str, Any], origins: dict[str, str]) -> None:
    """Paths inside containers and on the host. They travel as single arguments, never as shell text, so only
    what would be misread is refused: a relative path where the toolkit cannot know the directory, control
    characters anywhere, and anything but plain characters in the file nginx includes."""
    for key in ("remote_dir", "db_path", "app_dir", "upstream_file"):
        path = values[key]
        if path is not None and not path.startswith("/"):
            raise ConfigError(origins[key], f"{path!r} is not an absolute path",
                              f"write the full path from /, e.g. {show(FIELDS[key][1] or '/srv/myapp')}")
    for key in ("remote_dir", "db_path", "app_dir", "upstream_file", "state_dir", "backup_dir", "env_file",
                "compose_file", "context", "dockerfile"):
        if values[key] is not None and _CONTROL_RE.search(values[key]):
            raise ConfigError(origins[key], f"{show(values[key])} holds a control character (a newline?)",
                              "write the path on one line")
    if values["remote_dir"] is not None and values["remote_dir"].rstrip("/") == "":
        raise ConfigError(origins["remote_dir"], "is the root directory",
                          "give the app a directory of its own, e.g. /srv/myapp")
    if not _PLAIN_PATH_RE.match(values["upstream_file"]):
        raise ConfigError(origins["upstream_file"], f"{values['upstream_file']!r} holds characters nginx would misread",
                          "use letters, digits and . _ - + @ between the slashes, e.g. /etc/nginx/upstream/app.conf")


def _check_choices(values: dict[str, Any], origins: dict[str, str]) -> None:
    if values["engine"] not in ENGINES:
        raise ConfigError(origins["engine"], f"{show(values['engine'])} is not an engine",
                          "use compose (one Docker engine) or swarm (a Swarm cluster through its manager)")
    if values["compose_command"] not in ("auto", "docker compose", "docker-compose"):
        raise ConfigError(origins["compose_command"], f"{values['compose_command']!r} is not supported",
                          "use auto, 'docker compose' (v2) or docker-compose (v1)")
    if values["health_revision"] not in HEALTH_REVISION_MODES:
        raise ConfigError(origins["health_revision"], f"{show(values['health_revision'])} is not a way to prove "
                          "the revision", "use auto (the health body if it reports one, else the image label), "
                          "body (insist on the health body) or label (the image label of the answering container)")
    if not values["proxy_image"].strip() or any(ch.isspace() for ch in values["proxy_image"]):
        raise ConfigError(origins["proxy_image"], f"{values['proxy_image']!r} is not an image name",
                          "name an image like nginx:1.27-alpine")


DB_KINDS = ("sqlite", "postgres")
_DB_ROLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$.-]{0,62}$")


def _check_database(values: dict[str, Any], origins: dict[str, str]) -> None:
    service = values["backup_service"]
    if service is not None and not _SERVICE_RE.match(service):
        raise ConfigError(origins["backup_service"], f"{show(service)} is not a compose service name",
                          "name the service that holds the database, e.g. backup_service: db")
    if service is not None and service == values["proxy_service"]:
        raise ConfigError(origins["backup_service"], "is the proxy service",
                          "name the service that holds the database (e.g. db), or remove it for the app service")
    kind = values["db_kind"]
    if kind is not None and kind not in DB_KINDS:
        raise ConfigError(origins["db_kind"], f"{show(kind)} is not a database kind",
                          "use sqlite (the built-in copy of db_path) or postgres (pg_dump in backup_service)")
    if kind is not None and values["backup_command"] is not None:
        raise ConfigError(origins["db_kind"], "is set together with backup_command",
                          f"remove backup_command to use the built-in {kind} backup, or db_kind to run your command")
    for key in ("db_user", "db_name"):
        if values[key] is not None and kind != "postgres":
            raise ConfigError(origins[key], "applies to db_kind: postgres only",
                              f"set db_kind: postgres or remove {key}")
        if values[key] is not None and not _DB_ROLE_RE.match(values[key]):
            raise ConfigError(origins[key], f"{show(values[key])} is not a PostgreSQL name",
                              "use letters, digits and '_', starting with a letter or '_'")


_COPY_RE = re.compile(r"^(ssh://[^/\s]+/[^\s]*[^/\s][^\s]*|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?)$")


def _check_copies(values: dict[str, Any], origins: dict[str, str]) -> None:
    for index, place in enumerate(values["backup_copy"] or []):
        if not _COPY_RE.match(place):
            raise ConfigError(f"{origins['backup_copy']}[{index}]", f"{show(place)} is not a place to copy to",
                              "write ssh://<host>/<absolute dir> or s3://<bucket>/<prefix>")


def _check_files(values: dict[str, Any], origins: dict[str, str], root: Path) -> None:
    for key in ("compose_file", "dockerfile"):
        rel = values[key] if key == "compose_file" else os.path.join(values["context"], values[key])
        if not (root / rel).is_file():
            raise ConfigError(origins[key],
                              f"file {rel!r} not found in {root}", f"create it or point {key} at the right file")


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
