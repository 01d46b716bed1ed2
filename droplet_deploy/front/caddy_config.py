"""The front proxy's whole Caddy config (JSON, as the admin API takes it) from every environment's route. Pure.

Two servers: one on the HTTP port, one on the HTTPS port. Caddy's own HTTP-to-HTTPS redirect is off, because it
would send a name to HTTPS before its certificate exists; instead a name is redirected only once its certificate
is in Caddy's storage (``certified``), so a name whose DNS does not point here yet stays served on HTTP. The HTTP
server also answers the ACME HTTP-01 challenges (Caddy handles them on the HTTP port before any route).
"""

from __future__ import annotations

from typing import Any

from droplet_deploy.front.route import Listeners, Route

MAINTENANCE_RETRY_AFTER = 300
NOT_FOUND = "no site is configured for this host name\n"
_HSTS = "max-age=31536000"


def build(listeners: Listeners, routes: list[Route], certified: set[str]) -> dict[str, Any]:
    bind = listeners.bind or ""
    http_routes: list[dict[str, Any]] = []
    https_routes: list[dict[str, Any]] = []
    # Longer path prefixes first: /api of a name wins over the name's own route.
    for route in sorted(routes, key=lambda r: (-len(r.path or ""), r.project)):
        secure = [host for host in route.hosts if _has_certificate(route, host, certified)]
        plain = [host for host in route.hosts if host not in secure]
        if plain:
            http_routes.append(_route(plain, route, _handlers(route)))
        if secure:
            http_routes.append(_route(secure, route, [_redirect(listeners.https_port)]))
        if route.tls == "auto":
            https_routes.append(_route(list(route.hosts), route, _secure_handlers(route)))
    servers: dict[str, Any] = {
        "http": {"listen": [f"{bind}:{listeners.http_port}"], "routes": [*http_routes, _not_found()],
                 "automatic_https": {"disable_redirects": True}},
    }
    if https_routes:
        # No HTTP/3: its UDP listener cannot be shared, and an upgrade starts the new container beside the old one.
        servers["https"] = {"listen": [f"{bind}:{listeners.https_port}"], "routes": [*https_routes, _not_found()],
                            "automatic_https": {"disable_redirects": True}, "protocols": ["h1", "h2"]}
    config: dict[str, Any] = {
        "admin": {"listen": listeners.admin},
        "apps": {"http": {"http_port": listeners.http_port, "https_port": listeners.https_port, "servers": servers}},
    }
    tls = _tls(routes)
    if tls.get("automation"):
        # Caddy renews a certificate in the last third of its lifetime, looking every renew_interval.
        tls["automation"]["renew_interval"] = int(listeners.renew_check_interval * 1_000_000_000)
    if tls:
        config["apps"]["tls"] = tls
    return config


def _has_certificate(route: Route, host: str, certified: set[str]) -> bool:
    if route.tls != "auto":
        return False
    return route.certificate is not None or storage_name(host) in certified


def storage_name(host: str) -> str:
    return "wildcard_" + host[1:] if host.startswith("*.") else host


def _route(hosts: list[str], route: Route, handlers: list[dict[str, Any]]) -> dict[str, Any]:
    match: dict[str, Any] = {"host": hosts}
    if route.path:
        match["path"] = [route.path, route.path + "/*"]
    return {"match": [match], "handle": handlers, "terminal": True}


def _handlers(route: Route) -> list[dict[str, Any]]:
    if route.maintenance is not None:
        return [_maintenance(route.maintenance)]
    handlers: list[dict[str, Any]] = []
    if route.max_body_mb:
        handlers.append({"handler": "request_body", "max_size": route.max_body_mb * 1024 * 1024})
    if route.gzip:
        handlers.append({"handler": "encode", "encodings": {"gzip": {}}, "prefer": ["gzip"]})
    # Caddy passes websocket upgrades on and sets X-Forwarded-For/-Proto/-Host itself. The read timeout bounds the
    # wait for the app's answer (its headers), so a slow endpoint gets read_timeout, not a default.
    timeout = int(route.read_timeout * 1_000_000_000)
    handlers.append({"handler": "reverse_proxy", "upstreams": [{"dial": f"127.0.0.1:{route.upstream_port}"}],
                     "transport": {"protocol": "http", "response_header_timeout": timeout, "read_timeout": timeout}})
    return handlers


def _secure_handlers(route: Route) -> list[dict[str, Any]]:
    handlers = _handlers(route)
    if route.hsts:
        handlers.insert(0, {"handler": "headers", "response": {"set": {"Strict-Transport-Security": [_HSTS]}}})
    return handlers


def _maintenance(maintenance: dict[str, Any]) -> dict[str, Any]:
    message = str(maintenance.get("message") or "This site is down for maintenance. Please try again shortly.")
    body = ("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Maintenance</title></head>\n"
            f"<body><h1>Maintenance</h1><p>{_escape(message)}</p></body></html>\n")
    return {"handler": "static_response", "status_code": 503, "body": body,
            "headers": {"Retry-After": [str(maintenance.get("retry_after") or MAINTENANCE_RETRY_AFTER)],
                        "Content-Type": ["text/html; charset=utf-8"], "Cache-Control": ["no-store"]}}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _redirect(https_port: int) -> dict[str, Any]:
    port = "" if https_port == 443 else f":{https_port}"
    return {"handler": "static_response", "status_code": 308,
            "headers": {"Location": [f"https://{{http.request.host}}{port}{{http.request.uri}}"]}}


def _not_found() -> dict[str, Any]:
    return {"handle": [{"handler": "static_response", "status_code": 404, "body": NOT_FOUND}]}


def _tls(routes: list[Route]) -> dict[str, Any]:
    policies = []
    files = []
    for route in routes:
        if route.tls != "auto":
            continue
        if route.certificate is not None:
            files.append({"certificate": route.certificate, "key": route.key, "tags": [route.project]})
            continue
        issuer: dict[str, Any] = {"module": "acme", "ca": route.acme_directory,
                                  # HTTP-01 on the HTTP port only: TLS-ALPN-01 needs 443 as the CA sees it.
                                  "challenges": {"tls-alpn": {"disabled": True}}}
        if route.acme_email:
            issuer["email"] = route.acme_email
        if route.ca_bundle:
            issuer["trusted_roots_pem_files"] = [route.ca_bundle]
        policies.append({"subjects": list(route.hosts), "issuers": [issuer]})
    tls: dict[str, Any] = {}
    if policies:
        tls["automation"] = {"policies": policies}
    if files:
        tls["certificates"] = {"load_files": files}
    return tls
