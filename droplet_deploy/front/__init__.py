"""The front proxy: one Caddy per host, shared by every environment that names its ``hosts``, routing each name
(and path prefix) to that environment's own proxy, with certificates from an ACME CA or from files.

route.py is what one environment asks of it (pure), caddy_config.py the config all routes make (pure), proxy.py
the container and its config on the host, publish.py what a deploy does with it, maintenance.py the 503 page.
"""
