"""The nginx configuration of the proxy the toolkit runs in front of an app whose compose file has none.

It is proxy/default.conf in substance: the upstream lives in its own file (``upstream_file``), which a deploy
rewrites to name one app container before a graceful ``nginx -s reload``.
"""

from __future__ import annotations

import posixpath

from droplet_deploy.core.config import Settings

# Where the configuration goes in the proxy container. Replacing default.conf also replaces nginx:alpine's own
# default server, which would otherwise claim port 80 too.
CONFIG_PATH = "/etc/nginx/conf.d/default.conf"
LISTEN_PORT = 80

# What every proxy config the toolkit writes (here and the Swarm stack's, droplet_deploy/engines/swarm/stackfile.py) shares with
# proxy/default.conf: the caller's request id passed on (or one made), the proxy's own health location, and the
# headers that tell the app who asked.
REQUEST_ID_MAP = """\
map $http_x_request_id $proxy_request_id {
    default $http_x_request_id;
    ""      $request_id;
}
"""
HEALTH_LOCATION = """\
    location = /_proxy/health {
        access_log off;
        default_type text/plain;
        return 200 "ok\\n";
    }
"""
# The front proxy (deploy.hosts) runs on this host and reaches this nginx through Docker's port forwarding, so
# from here it has a loopback or private address (its network's gateway); only from there is the scheme it
# forwards the client's (https behind TLS). Anyone else gets our own scheme, whatever header they send.
FORWARDED_PROTO_MAP = """\
geo $from_this_host {
    default        0;
    127.0.0.0/8    1;
    10.0.0.0/8     1;
    172.16.0.0/12  1;
    192.168.0.0/16 1;
    ::1            1;
    fc00::/7       1;
}
map "$from_this_host:$http_x_forwarded_proto" $forwarded_proto {
    default  $scheme;
    "1:https" https;
    "1:http"  http;
}
"""
# A websocket (or any Upgrade) is passed on over HTTP/1.1; every other request closes its upstream connection,
# as nginx does by default.
UPGRADE_MAP = """\
map $http_upgrade $connection_upgrade {
    default upgrade;
    ""      close;
}
"""
HEADER_MAPS = REQUEST_ID_MAP + FORWARDED_PROTO_MAP + UPGRADE_MAP
# $proxy_add_x_forwarded_for appends the peer to what the front proxy sent, so the client's address stays first.
FORWARDED_HEADERS = """\
        proxy_set_header Host $host;
        proxy_set_header X-Request-ID $proxy_request_id;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $forwarded_proto;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
"""


def body_limit(max_body_mb: int) -> str:
    """``client_max_body_size`` of ``deploy.max_body_mb``: nginx's own 0 is no limit, as the setting's is."""
    return f"{max_body_mb}m" if max_body_mb else "0"


def read_timeout(seconds: float) -> str:
    """``proxy_read_timeout`` of ``deploy.read_timeout``, in milliseconds so a fraction of a second is kept."""
    return f"{max(1, round(seconds * 1000))}ms"


_TEMPLATE = """\
# Written by the deploy toolkit: the proxy in front of the app. Rewritten on every deploy; do not edit.
""" + HEADER_MAPS + """
upstream app_upstream {
    include @UPSTREAM_FILE@;
}

server {
    listen @LISTEN_PORT@ default_server;
    server_name _;
    client_max_body_size @MAX_BODY@;

""" + HEALTH_LOCATION + """
    location / {
        proxy_pass http://app_upstream;
""" + FORWARDED_HEADERS + """\
        proxy_connect_timeout 5s;
        proxy_send_timeout 60s;
        proxy_read_timeout @READ_TIMEOUT@;
        # Retry only what never reached the app; nginx never retries a POST on its own.
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 2;
        proxy_next_upstream_timeout 10s;
    }
}
"""


def config(upstream_file: str, *, max_body_mb: int = 100, read_timeout_s: float = 60.0) -> str:
    """``upstream_file`` is validated to plain path characters (config.py), so it cannot break the syntax."""
    return (_TEMPLATE.replace("@UPSTREAM_FILE@", upstream_file).replace("@LISTEN_PORT@", str(LISTEN_PORT))
            .replace("@MAX_BODY@", body_limit(max_body_mb)).replace("@READ_TIMEOUT@", read_timeout(read_timeout_s)))


_LOCATION = """\
    location @PATH@ {
        proxy_pass http://@UPSTREAM@;
""" + FORWARDED_HEADERS + """\
        proxy_connect_timeout 5s;
        proxy_send_timeout 60s;
        proxy_read_timeout @READ_TIMEOUT@;
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 2;
        proxy_next_upstream_timeout 10s;
    }
"""

_ROUTED = """\
# Written by the deploy toolkit: the proxy in front of the app and its frontend. Rewritten on every deploy.
""" + HEADER_MAPS + """
upstream app_upstream {
    include @UPSTREAM_FILE@;
}
upstream frontend_upstream {
    include @FRONTEND_FILE@;
}

server {
    listen @LISTEN_PORT@ default_server;
    server_name _;
    client_max_body_size @MAX_BODY@;

""" + HEALTH_LOCATION + "@API@" + "@FRONT@" + "}\n"


def routed_config(upstream_file: str, frontend_file: str, api_path: str, *, max_body_mb: int = 100,
                  read_timeout_s: float = 60.0) -> str:
    """``api_path`` to the app, everything else to the frontend: each upstream its own file, switched on its own.
    The paths are validated to plain characters (config.py)."""
    api = _LOCATION.replace("@PATH@", api_path).replace("@UPSTREAM@", "app_upstream")
    front = _LOCATION.replace("@PATH@", "/").replace("@UPSTREAM@", "frontend_upstream")
    return (_ROUTED.replace("@API@", api).replace("@FRONT@", front).replace("@UPSTREAM_FILE@", upstream_file)
            .replace("@FRONTEND_FILE@", frontend_file).replace("@LISTEN_PORT@", str(LISTEN_PORT))
            .replace("@MAX_BODY@", body_limit(max_body_mb)).replace("@READ_TIMEOUT@", read_timeout(read_timeout_s)))


def frontend_file(upstream_file: str) -> str:
    """The frontend's upstream file, beside the app's."""
    return posixpath.join(posixpath.dirname(upstream_file), "frontend.conf")


def config_for(settings: Settings) -> str:
    """The proxy config of one environment: its upstream file(s), body limit and read timeout."""
    if settings.frontend_service:
        return routed_config(settings.upstream_file, frontend_file(settings.upstream_file), settings.api_path,
                             max_body_mb=settings.max_body_mb, read_timeout_s=settings.read_timeout)
    return config(settings.upstream_file, max_body_mb=settings.max_body_mb, read_timeout_s=settings.read_timeout)
