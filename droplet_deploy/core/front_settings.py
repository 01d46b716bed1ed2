"""The checks of the front proxy's settings (``hosts``, ``tls``, ``acme_*``, ``front_*``): values of the right type
that still cannot work, each refused in one line naming the key and the fix. Called by ``config.load``."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from droplet_deploy.core.errors import ConfigError

# A DNS name as a certificate may carry it: labels of letters, digits and '-', optionally one leading "*." label.
_HOST_RE = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PREFIX_RE = re.compile(r"^(/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)+$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_PLAIN_PATH_RE = re.compile(r"^(/[A-Za-z0-9_.+@-]+)+$")
TLS_MODES = ("auto", "off")


def check(values: dict[str, Any], origins: dict[str, str]) -> None:
    _check_hosts(values, origins)
    _check_tls(values, origins)
    _check_front(values, origins)


def _check_hosts(values: dict[str, Any], origins: dict[str, str]) -> None:
    names = [name.strip().lower().rstrip(".") for name in values["hosts"]]
    for name in names:
        if not _HOST_RE.match(name) or len(name) > 253:
            raise ConfigError(origins["hosts"], f"{name!r} is not a host name",
                              "list the names users type, e.g. [shop.example.com, www.shop.example.com]")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(origins["hosts"], f"names {repeated[0]!r} twice", "list each host name once")
    values["hosts"] = names
    prefix = values["path_prefix"]
    if prefix is None:
        return
    if not names:
        raise ConfigError(origins["path_prefix"], "is set but hosts is empty",
                          "a path prefix routes part of a host name: set hosts too, or remove path_prefix")
    prefix = prefix.rstrip("/")
    if not _PREFIX_RE.match(prefix):
        raise ConfigError(origins["path_prefix"], f"{values['path_prefix']!r} is not a path prefix",
                          "write a path from '/', e.g. /api, with no spaces or '?'")
    values["path_prefix"] = prefix


def _check_tls(values: dict[str, Any], origins: dict[str, str]) -> None:
    if values["tls"] not in TLS_MODES:
        raise ConfigError(origins["tls"], f"{values['tls']!r} is not a TLS mode",
                          "use auto (certificates from acme_directory, or tls_certificate/tls_key) or off "
                          "(plain HTTP on http_port only)")
    cert, key = values["tls_certificate"], values["tls_key"]
    if (cert is None) != (key is None):
        given, missing = ("tls_certificate", "tls_key") if cert is not None else ("tls_key", "tls_certificate")
        raise ConfigError(origins[missing], f"is missing while {given} is set",
                          "give both files (the certificate chain and its private key), or neither")
    for key_name in ("tls_certificate", "tls_key", "acme_ca_bundle"):
        path = values[key_name]
        if path is not None and not _PLAIN_PATH_RE.match(path):
            raise ConfigError(origins[key_name], f"{path!r} is not an absolute path of plain characters",
                              "give the file's full path on the host, e.g. /etc/ssl/private/shop.pem")
    directory = values["acme_directory"]
    if not directory.startswith("https://") or any(ch.isspace() for ch in directory):
        raise ConfigError(origins["acme_directory"], f"{directory!r} is not an ACME directory URL",
                          "give the https:// URL of the CA's directory, e.g. "
                          "https://acme-v02.api.letsencrypt.org/directory")
    email = values["acme_email"]
    if email is not None and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
        raise ConfigError(origins["acme_email"], f"{email!r} is not an email address",
                          "give the address the CA writes to about expiring certificates, e.g. ops@example.com")


def _check_front(values: dict[str, Any], origins: dict[str, str]) -> None:
    if not _NAME_RE.match(values["front_name"]):
        raise ConfigError(origins["front_name"], f"{values['front_name']!r} is not a container name",
                          "use lowercase letters, digits, '.', '_' or '-'")
    if not _PLAIN_PATH_RE.match(values["front_dir"]):
        raise ConfigError(origins["front_dir"], f"{values['front_dir']!r} is not an absolute path of plain "
                          "characters", "write the full path from /, e.g. /var/lib/droplet-deploy/front")
    if not values["front_image"].strip() or any(ch.isspace() for ch in values["front_image"]):
        raise ConfigError(origins["front_image"], f"{values['front_image']!r} is not an image name",
                          "name a Caddy 2 image, e.g. caddy:2")
    bind = values["front_bind"]
    if bind is not None:
        try:
            ipaddress.ip_address(bind)
        except ValueError:
            raise ConfigError(origins["front_bind"], f"{bind!r} is not an IP address",
                              "give one address of the host, e.g. 203.0.113.7, or remove it to listen on all") from None
    ports = {"http_port": values["http_port"], "https_port": values["https_port"],
             "front_admin_port": values["front_admin_port"]}
    seen: dict[int, str] = {}
    for key, port in ports.items():
        if port in seen:
            raise ConfigError(origins[key], f"is {port}, as {seen[port]} is",
                              "give the front proxy's HTTP, HTTPS and admin listeners a port each")
        seen[port] = key
