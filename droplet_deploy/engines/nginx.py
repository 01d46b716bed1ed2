"""The nginx configuration of the proxy the toolkit runs in front of an app whose compose file has none.

It is proxy/default.conf in substance: the upstream lives in its own file (``upstream_file``), which a deploy
rewrites to name one app container before a graceful ``nginx -s reload``.
"""

from __future__ import annotations

import posixpath

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
FORWARDED_HEADERS = """\
        proxy_set_header Host $host;
        proxy_set_header X-Request-ID $proxy_request_id;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
"""

_TEMPLATE = """\
# Written by the deploy toolkit: the proxy in front of the app. Rewritten on every deploy; do not edit.
""" + REQUEST_ID_MAP + """
upstream app_upstream {
    include @UPSTREAM_FILE@;
}

server {
    listen @LISTEN_PORT@ default_server;
    server_name _;

""" + HEALTH_LOCATION + """
    location / {
        proxy_pass http://app_upstream;
""" + FORWARDED_HEADERS + """\
        proxy_connect_timeout 5s;
        proxy_send_timeout 60s;
        proxy_read_timeout 60s;
        # Retry only what never reached the app; nginx never retries a POST on its own.
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 2;
        proxy_next_upstream_timeout 10s;
    }
}
"""


def config(upstream_file: str) -> str:
    """``upstream_file`` is validated to plain path characters (config.py), so it cannot break the syntax."""
    return _TEMPLATE.replace("@UPSTREAM_FILE@", upstream_file).replace("@LISTEN_PORT@", str(LISTEN_PORT))


_LOCATION = """\
    location @PATH@ {
        proxy_pass http://@UPSTREAM@;
""" + FORWARDED_HEADERS + """\
        proxy_connect_timeout 5s;
        proxy_send_timeout 60s;
        proxy_read_timeout 60s;
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 2;
        proxy_next_upstream_timeout 10s;
    }
"""

_ROUTED = """\
# Written by the deploy toolkit: the proxy in front of the app and its frontend. Rewritten on every deploy.
""" + REQUEST_ID_MAP + """
upstream app_upstream {
    include @UPSTREAM_FILE@;
}
upstream frontend_upstream {
    include @FRONTEND_FILE@;
}

server {
    listen @LISTEN_PORT@ default_server;
    server_name _;

""" + HEALTH_LOCATION + "@API@" + "@FRONT@" + "}\n"


def routed_config(upstream_file: str, frontend_file: str, api_path: str) -> str:
    """``api_path`` to the app, everything else to the frontend: each upstream its own file, switched on its own.
    The paths are validated to plain characters (config.py)."""
    api = _LOCATION.replace("@PATH@", api_path).replace("@UPSTREAM@", "app_upstream")
    front = _LOCATION.replace("@PATH@", "/").replace("@UPSTREAM@", "frontend_upstream")
    return (_ROUTED.replace("@API@", api).replace("@FRONT@", front).replace("@UPSTREAM_FILE@", upstream_file)
            .replace("@FRONTEND_FILE@", frontend_file).replace("@LISTEN_PORT@", str(LISTEN_PORT)))


def frontend_file(upstream_file: str) -> str:
    """The frontend's upstream file, beside the app's."""
    return posixpath.join(posixpath.dirname(upstream_file), "frontend.conf")
