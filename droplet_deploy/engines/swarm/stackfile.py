"""The stack file the toolkit deploys, planned from the app's own compose file (pure: dict in, dict out).

The input is the compose model after interpolation (``docker compose config --format json``: env files inlined,
variables resolved, paths absolute), so the stack deploys exactly what ``docker compose`` would run. What changes
for Swarm, and why:

- the app: the release's image; ``deploy`` with the replica count, ``endpoint_mode`` and a start-first
  ``update_config`` whose failures pause (the toolkit, not Swarm, decides to roll back); the health check becomes
  the app's own check AND the revision gate (``commands.swarm.revision_gate``), so a task counts as running, and
  is listed in service discovery, only once it reports the revision being deployed;
- the proxy: toolkit-owned nginx on the stack's network, resolving ``tasks.<app>`` per request (so it behaves the
  same with VIPs and with ``dnsrr``), its port published in ``host`` mode (the ingress mesh needs IPVS), placed on
  a manager; its config is a Swarm config whose name carries a hash of its content (configs are immutable);
- the stack's own networks: attachable, so ``deploy.exec``'s one-off container can join them;
- dropped, because a stack cannot use them or they mean something else on a cluster: ``build``,
  ``container_name``, ``depends_on``, ``restart`` (``deploy.restart_policy`` instead), ``expose``, bind mounts of
  the proxy, compose-only keys of the normalised model.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from droplet_deploy.commands.swarm import revision_gate
from droplet_deploy.engines import nginx

STACK_VERSION = "3.8"
REVISION_LABEL = "org.droplet-deploy.revision"

# Keys of a compose service that ``docker stack deploy`` honours and that mean the same on a cluster.
_SERVICE_KEYS = (
    "image", "command", "entrypoint", "environment", "healthcheck", "labels", "logging", "stop_grace_period",
    "stop_signal", "user", "working_dir", "ulimits", "secrets", "configs", "sysctls", "hostname", "init",
    "cap_add", "cap_drop", "read_only", "tmpfs", "extra_hosts", "dns", "dns_search",
)
_VOLUME_KEYS = ("type", "source", "target", "read_only")

_PROXY_CONF = """\
# Written by the deploy toolkit for Swarm. nginx resolves the app's tasks per request (valid=1s): Swarm lists a
# task in DNS only once its health check (the revision gate) passes, and takes it out 2 s before stopping it,
# so a cached answer never outlives the task. A refused connection is retried on the next task.
resolver 127.0.0.11 valid=1s ipv6=off;
resolver_timeout 2s;

{header_maps}
server {{
    listen 80 default_server;
    server_name _;
    client_max_body_size {max_body};

{health_location}
    location / {{
        set $app_tasks tasks.{app};
        proxy_pass http://$app_tasks:{port};
{forwarded_headers}\
        proxy_connect_timeout 2s;
        proxy_read_timeout {read_timeout};
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 3;
        proxy_next_upstream_timeout 10s;
    }}
}}
"""


@dataclass(frozen=True)
class StackPlan:
    stack: str
    image: str
    revision: str
    public_port: int
    proxy_image: str
    proxy_config_file: str  # where the proxy's nginx config is written beside the stack file
    app_service: str = "app"
    proxy_service: str = "proxy"
    replicas: int = 2
    app_port: int = 8000
    health_path: str = "/api/health"
    endpoint_mode: str = "dnsrr"  # "vip" where the kernel has IPVS
    health_interval: float = 2.0
    health_start_period: float = 60.0  # at least the deploy's health timeout: failures before it do not count
    max_replicas_per_node: int | None = None
    max_body_mb: int = 100  # deploy.max_body_mb, deploy.read_timeout: the proxy's limits
    read_timeout: float = 60.0
    dropped: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.endpoint_mode not in ("dnsrr", "vip"):
            raise ValueError(f"endpoint_mode is dnsrr or vip, not {self.endpoint_mode!r}")
        if self.replicas < 1:
            raise ValueError(f"replicas must be at least 1, got {self.replicas}")


def proxy_conf(plan: StackPlan) -> str:
    return _PROXY_CONF.format(app=plan.app_service, port=plan.app_port, header_maps=nginx.HEADER_MAPS,
                              health_location=nginx.HEALTH_LOCATION, forwarded_headers=nginx.FORWARDED_HEADERS,
                              max_body=nginx.body_limit(plan.max_body_mb),
                              read_timeout=nginx.read_timeout(plan.read_timeout))


def proxy_config_name(plan: StackPlan) -> str:
    """Swarm configs cannot change: a new content gets a new name (and only then is the proxy restarted)."""
    return f"proxy_conf_{hashlib.sha256(proxy_conf(plan).encode()).hexdigest()[:12]}"


def render(compose: Mapping, plan: StackPlan) -> tuple[dict, list[str]]:
    """The stack file (as a dict) and a line for each thing of the compose file it left out or replaced."""
    services = compose.get("services") or {}
    if plan.app_service not in services:
        raise ValueError(f"the compose file has no service {plan.app_service!r} to deploy")
    _refuse_bound_ports(services)
    notes: list[str] = []
    out_services = {}
    for name, service in services.items():
        if name == plan.proxy_service:
            continue
        out_services[name] = _service(name, service or {}, notes)
    out_services[plan.app_service] = _app(out_services[plan.app_service], services[plan.app_service] or {}, plan)
    out_services[plan.proxy_service] = _proxy(services.get(plan.proxy_service) or {}, plan, notes)
    stack = {
        "version": STACK_VERSION,
        "services": out_services,
        "configs": {proxy_config_name(plan): {"file": plan.proxy_config_file}},
    }
    used = {v.get("source") for svc in out_services.values() for v in svc.get("volumes", []) if isinstance(v, dict)}
    volumes = {name: spec for name, spec in _named(compose.get("volumes"),
                                                   keep=("driver", "driver_opts", "labels", "external")).items()
               if name in used}
    if volumes:
        stack["volumes"] = volumes
    networks = _networks(compose)
    if networks:
        stack["networks"] = networks
    return stack, notes


class Unsupported(ValueError):
    """What a stack cannot do as the compose file asks; ``hint`` says what to change."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


# What compose's model gives as the address of a port published on every interface.
_EVERY_INTERFACE = ("", "0.0.0.0", "::")  # noqa: S104 - compared against, never bound


def _refuse_bound_ports(services: Mapping) -> None:
    """A Swarm service publishes a port on every interface of its node: it has no host address to bind to. A
    compose file that binds one (``10.0.0.5:8000:8000``) keeps that port private, and Docker's port rules bypass
    host firewalls, so deploying it as a stack would put it on the internet. Refused, never widened."""
    for name, service in services.items():
        for port in (service or {}).get("ports") or ():
            address = port.get("host_ip") if isinstance(port, Mapping) else None
            if address not in (None, *_EVERY_INTERFACE):
                raise Unsupported(
                    f"service {name} publishes port {port.get('published') or port.get('target')} on "
                    f"{address} only, and a Swarm service cannot bind an address: it would listen on every "
                    "interface", "keep engine: compose for this stack, or drop the address from the compose file "
                    "and close the port with a firewall rule in the DOCKER-USER chain")


def to_yaml(stack: Mapping) -> str:
    return yaml.safe_dump(dict(stack), sort_keys=False, default_flow_style=False)


def _service(name: str, service: Mapping, notes: list[str]) -> dict:
    out = {key: service[key] for key in _SERVICE_KEYS if service.get(key) is not None}
    volumes = [_volume(v) for v in service.get("volumes") or []]
    if volumes:
        out["volumes"] = volumes
    networks = service.get("networks")
    if networks:
        out["networks"] = list(networks)
    if service.get("ports"):
        out["ports"] = [_port(p) for p in service["ports"]]
    for key in ("build", "container_name", "depends_on", "restart", "expose"):
        if service.get(key):
            notes.append(f"{name}: {key} is not used by a stack; left out")
    deploy = _deploy(service.get("deploy") or {})
    if deploy:
        out["deploy"] = deploy
    return out


def _deploy(deploy: Mapping) -> dict:
    """The service's ``deploy`` section as the stack file's schema takes it: compose's model gives ``cpus`` as a
    number (``0.5``), the stack schema wants a string (``"0.5"``)."""
    out = dict(deploy)
    resources = out.get("resources")
    if isinstance(resources, Mapping):
        out["resources"] = {kind: {key: f"{value:g}" if key == "cpus" and isinstance(value, (int, float)) else value
                                   for key, value in spec.items()} if isinstance(spec, Mapping) else spec
                            for kind, spec in resources.items()}
    return out


def _app(base: dict, original: Mapping, plan: StackPlan) -> dict:
    app = dict(base)
    app["image"] = plan.image
    url = f"http://127.0.0.1:{plan.app_port}{plan.health_path}"
    own = _own_check(original.get("healthcheck"))
    kind, line = revision_gate(url, plan.revision, before=own.replace("$$", "$") if own else None)
    app["healthcheck"] = {
        "test": [kind, _escape(line)],
        "interval": _seconds(plan.health_interval),
        "timeout": _seconds(max(3.0, plan.health_interval)),
        "retries": 3,
        "start_period": _seconds(plan.health_start_period),
    }
    deploy = dict(app.get("deploy") or {})
    deploy.update({
        "replicas": plan.replicas,
        "endpoint_mode": plan.endpoint_mode,
        # One task at a time, the new one beside the old; a task that never passes the gate pauses the update
        # and the toolkit rolls back (Swarm's own rollback would not record or report it).
        "update_config": {"parallelism": 1, "order": "start-first", "failure_action": "pause", "monitor": "5s"},
        "rollback_config": {"parallelism": 1, "order": "start-first", "failure_action": "pause"},
        "labels": {**(deploy.get("labels") or {}), REVISION_LABEL: plan.revision},
    })
    if plan.max_replicas_per_node:
        placement = dict(deploy.get("placement") or {})
        placement["max_replicas_per_node"] = plan.max_replicas_per_node
        deploy["placement"] = placement
    app["deploy"] = deploy
    return app


def _proxy(original: Mapping, plan: StackPlan, notes: list[str]) -> dict:
    if original.get("volumes") or original.get("command"):
        notes.append(f"{plan.proxy_service}: its config is the toolkit's (a Swarm config); "
                     "its bind mounts and command are left out")
    proxy = {
        "image": plan.proxy_image,
        "ports": [{"target": 80, "published": plan.public_port, "protocol": "tcp", "mode": "host"}],
        "configs": [{"source": proxy_config_name(plan), "target": "/etc/nginx/conf.d/default.conf"}],
        "deploy": {
            "replicas": 1,
            "placement": {"constraints": ["node.role == manager"]},
            # A host port cannot be held by two tasks: a changed proxy is replaced stop-first.
            "update_config": {"order": "stop-first"},
        },
    }
    if original.get("healthcheck"):
        proxy["healthcheck"] = dict(original["healthcheck"])
    networks = original.get("networks")
    if networks:
        proxy["networks"] = list(networks)
    return proxy


def _own_check(healthcheck: Mapping | None) -> str | None:
    """The app's own health check as one shell line (None when it has none or disables it)."""
    if not healthcheck or healthcheck.get("disable"):
        return None
    test = healthcheck.get("test")
    if isinstance(test, str):
        return test or None
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return " ".join(str(t) for t in test[1:]) or None
    if test[0] == "CMD":
        return shlex.join(str(t) for t in test[1:]) or None
    return shlex.join(str(t) for t in test)


def _volume(volume: Mapping[str, Any] | str) -> dict[str, Any] | str:
    if isinstance(volume, str):
        return volume
    return {key: volume[key] for key in _VOLUME_KEYS if volume.get(key) is not None}


def _port(port: Mapping[str, Any] | str | int) -> dict[str, Any] | str | int:
    if isinstance(port, (str, int)):
        return port
    out = {key: port[key] for key in ("target", "published", "protocol", "mode") if port.get(key) is not None}
    if "published" in out:
        out["published"] = int(out["published"])
    return out


def _named(entries: Mapping | None, keep: tuple[str, ...]) -> dict:
    """Top-level volumes/networks, without compose's project-prefixed ``name`` (the stack namespaces them)."""
    out = {}
    for name, spec in (entries or {}).items():
        spec = spec or {}
        out[name] = {key: spec[key] for key in keep if spec.get(key) is not None} or None
    return out


def _networks(compose: Mapping) -> dict:
    """The top-level networks; the stack's own take one-off containers (``deploy.exec``), as a compose project's
    networks do. Swarm creates a network once: one created without it stays so until ``docker stack rm``."""
    networks = _named(compose.get("networks"), keep=("driver", "driver_opts", "labels", "external", "attachable"))
    return {name: spec if spec and spec.get("external") else {**(spec or {}), "attachable": True}
            for name, spec in networks.items()}


def _escape(text: str) -> str:
    """``docker stack deploy`` interpolates ``$VAR`` in the file: a literal ``$`` is written ``$$``."""
    return text.replace("$", "$$")


def _seconds(value: float) -> str:
    return f"{value:g}s"
