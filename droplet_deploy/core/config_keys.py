"""Every key ``deploy:`` may hold, with its kind and its default, and how error lines name a value's kind.

Apart from core/config.py so that building the task collection (``inv --list``, and Invoke's config defaults)
needs only this table, not the settings' resolution and checks.
"""

from __future__ import annotations

from typing import Any

from droplet_deploy.core.redact import redact

# (type, default). ``None`` as a default means "optional, no value".
STR, INT, FLOAT, BOOL, LIST, DICT = "string", "integer", "number", "true/false", "list of strings", "mapping"
HOOKS = "mapping of hooks"

FIELDS: dict[str, tuple[str, Any]] = {
    "app_name": (STR, None),
    "context": (STR, "."),
    "dockerfile": (STR, "Dockerfile"),
    "build_target": (STR, None),
    "build_args": (DICT, {}),
    "compose_file": (STR, "docker-compose.test.yml"),
    "project": (STR, None),
    "host": (STR, None),
    "public_port": (INT, 8001),
    "app_service": (STR, "app"),
    "app_port": (INT, 8000),
    "proxy_service": (STR, "proxy"),
    "proxy_image": (STR, "nginx:1.27-alpine"),
    "upstream_file": (STR, "/etc/nginx/upstream/app.conf"),
    "app_dir": (STR, "/srv/app"),
    "check_command": (LIST, ["python3", "-m", "app", "--check"]),
    "health_path": (STR, "/api/health"),
    "health_timeout": (FLOAT, 60.0),
    "health_interval": (FLOAT, 0.5),
    # How the revision is proven: the health body (body), the answering container's image label (label), or the
    # body when it reports one and the label otherwise (auto).
    "health_revision": (STR, "auto"),
    "check_endpoints": (LIST, ["/api/health"]),
    # The Host header of every health probe: a name the app accepts (Django's ALLOWED_HOSTS). Unset: the first of
    # the environment's public names when it has any, else localhost (Settings.probe_host).
    "health_host": (STR, None),
    # Services on the release (a worker on the app's image, a service built of its own) recreated before the app's
    # switch rather than after it, in this order: for a worker the new release's code needs running first.
    "services_first": (LIST, []),
    # The plan's backend + frontend shape: the proxy the toolkit adds sends api_path to the app and everything else
    # to this service (static files behind its own web server, listening on frontend_port), each rolled the same way.
    "frontend_service": (STR, None),
    "frontend_port": (INT, 8080),
    "api_path": (STR, "/api/"),
    "drain_seconds": (INT, 15),
    "keep_images": (INT, 5),
    "keep_releases": (INT, 5),
    "compose_command": (STR, "auto"),
    "state_dir": (STR, None),
    "remote_dir": (STR, None),
    "env_file": (STR, None),
    "min_free_mb": (INT, 1024),
    # Below this much free space where Docker keeps images, preflight warns and a deploy ends with deploy.clean's
    # step (0: never).
    "clean_below_mb": (INT, 4096),
    "lock_stale_seconds": (FLOAT, 120.0),
    "ssh_config": (STR, None),
    "known_hosts": (STR, None),
    "accept_new_host_key": (BOOL, False),
    "connect_timeout": (FLOAT, 15.0),
    "backup_command": (LIST, None),
    "backup_dir": (STR, None),
    "keep_backups": (INT, 7),
    # null: the app has no database (backups then hold only logs and config, and a deploy takes none).
    "db_path": (STR, "/data/app.db"),
    "restore_command": (LIST, None),
    # Unset: on for environments with a host (production data), off for the local test stack.
    "backup_before_deploy": (BOOL, None),
    # Commands run around a release: pre_switch in the new image before traffic moves, post_deploy where inv runs.
    "hooks": (HOOKS, {}),
    # Where the stack runs: compose (one engine) or swarm (a Swarm cluster, through its manager: docs/swarm.md).
    "engine": (STR, "compose"),
    # Swarm only: how many app tasks the cluster runs, and how the manager reaches each other node's engine
    # (a DOCKER_HOST such as ssh://deploy@worker-1) to send it the image.
    "replicas": (INT, 2),
    "swarm_nodes": (LIST, []),
    # Swarm only: the registry image the manager runs on its 127.0.0.1 to hand each node only the layers it lacks;
    # null: every node gets the whole image by docker save | docker load.
    "swarm_registry_image": (STR, "registry:2"),
    # The front proxy: one per host, shared by every environment with `hosts` (docs/several-apps.md, docs/https.md).
    "hosts": (LIST, []),
    "path_prefix": (STR, None),
    "http_port": (INT, 80),
    "https_port": (INT, 443),
    "tls": (STR, "auto"),
    "acme_directory": (STR, "https://acme-v02.api.letsencrypt.org/directory"),
    "acme_email": (STR, None),
    "acme_ca_bundle": (STR, None),
    "tls_certificate": (STR, None),
    "tls_key": (STR, None),
    "hsts": (BOOL, False),
    "certificate_timeout": (FLOAT, 90.0),
    "front_name": (STR, "droplet-front"),
    "front_image": (STR, "caddy:2"),
    "front_dir": (STR, "/var/lib/droplet-deploy/front"),
    "front_bind": (STR, None),
    "front_admin_port": (INT, 2019),
    "max_body_mb": (INT, 100),
    "read_timeout": (FLOAT, 60.0),
    "gzip": (BOOL, True),
    "renew_check_interval": (FLOAT, 600.0),
    # Deadlines: how long one command may run when nothing else bounds it, by kind, and how long the host may
    # take to answer the SSH link check (a lost link is noticed within link_timeout + 5 seconds).
    "command_timeout": (FLOAT, 900.0),
    "build_timeout": (FLOAT, 3600.0),
    "pre_switch_timeout": (FLOAT, 3600.0),
    "link_timeout": (FLOAT, 15.0),
    # Backups of a database service: where they run (a compose service; unset: the app service) and what the
    # database is (sqlite: the built-in copy of db_path; postgres: pg_dump/pg_restore in that service's container,
    # as db_user on db_name, unset: its POSTGRES_USER/POSTGRES_DB).
    "backup_service": (STR, None),
    "db_kind": (STR, None),
    "db_user": (STR, None),
    "db_name": (STR, None),
    # Where each backup is copied once it passed its check: ssh://<host>/<dir> and s3://<bucket>/<prefix>.
    "backup_copy": (LIST, []),
}

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


def describe(value: Any) -> str:
    """A value as error messages show it: its YAML kind, then the value (cut short)."""
    return "null" if value is None else f"{kind_of(value)} {show(value)}"


def article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def kind_of(value: Any) -> str:
    """The YAML name of a value's type: mapping, list, string, true/false, integer, number, null."""
    return {dict: "mapping", list: "list", str: "string", bool: "true/false", int: "integer", float: "number",
            type(None): "null"}.get(
        type(value), type(value).__name__
    )


def show(value: Any) -> str:
    text = redact(repr(value))  # a mistyped backup_command may hold a password
    return text if len(text) <= 40 else text[:37] + "..."
