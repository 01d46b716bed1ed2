"""The environment's own nginx (the toolkit's generated proxy, the Swarm stack's, the reference proxy/default.conf):
the front proxy's scheme passed on only from this host, websocket upgrades, and the body limit and read timeout of
the settings the front proxy honours too."""

from __future__ import annotations

import re
from pathlib import Path

from droplet_deploy.core import config
from droplet_deploy.engines import nginx
from droplet_deploy.engines.swarm import stackfile

REFERENCE = Path(__file__).resolve().parents[2] / "proxy" / "default.conf"


def settings(tmp_path, **env):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "docker-compose.test.yml").write_text("services: {}\n")
    return config.load({"app_name": "shop", "environments": {"test": {"project": "shop-test", **env}}},
                       root=tmp_path)


def directive(conf: str, name: str) -> list[str]:
    return re.findall(rf"^\s*{name} ([^;]+);", conf, flags=re.M)


def test_the_body_limit_and_read_timeout_come_from_the_settings(tmp_path):
    conf = nginx.config_for(settings(tmp_path, max_body_mb=20, read_timeout=120))
    assert directive(conf, "client_max_body_size") == ["20m"]
    assert directive(conf, "proxy_read_timeout") == ["120000ms"]
    assert directive(conf, "include") == [settings(tmp_path).upstream_file]


def test_the_defaults_are_the_front_proxys_and_zero_is_no_limit(tmp_path):
    conf = nginx.config_for(settings(tmp_path))
    assert directive(conf, "client_max_body_size") == ["100m"]  # not nginx's 1 MB: uploads pass
    assert directive(conf, "proxy_read_timeout") == ["60000ms"]
    unlimited = nginx.config_for(settings(tmp_path, max_body_mb=0, read_timeout=0.25))
    assert directive(unlimited, "client_max_body_size") == ["0"]
    assert directive(unlimited, "proxy_read_timeout") == ["250ms"]


def test_the_forwarded_scheme_is_trusted_only_from_this_host(tmp_path):
    conf = nginx.config_for(settings(tmp_path))
    assert directive(conf, "proxy_set_header X-Forwarded-Proto") == ["$forwarded_proto"]
    geo = re.search(r"geo \$from_this_host \{(.*?)\}", conf, flags=re.S)
    assert geo is not None
    trusted = dict(line.rstrip(";").split() for line in geo.group(1).strip().splitlines())
    assert trusted.pop("default") == "0"
    assert set(trusted.values()) == {"1"}
    assert {"127.0.0.0/8", "::1", "172.16.0.0/12"} <= set(trusted)  # loopback, Docker's gateways
    proto = re.search(r'map "\$from_this_host:\$http_x_forwarded_proto" \$forwarded_proto \{(.*?)\}', conf, re.S)
    assert proto is not None
    # Only the two schemes, and only from this host: any other value or peer gets nginx's own scheme.
    assert re.findall(r"^\s*(\S+)\s+(\S+);", proto.group(1), flags=re.M) == \
        [("default", "$scheme"), ('"1:https"', "https"), ('"1:http"', "http")]
    assert directive(conf, "proxy_set_header X-Forwarded-For") == ["$proxy_add_x_forwarded_for"]


def test_a_websocket_upgrade_is_passed_on_over_http_1_1(tmp_path):
    conf = nginx.config_for(settings(tmp_path))
    assert directive(conf, "proxy_http_version") == ["1.1"]
    assert directive(conf, "proxy_set_header Upgrade") == ["$http_upgrade"]
    assert directive(conf, "proxy_set_header Connection") == ["$connection_upgrade"]
    upgrade = re.search(r"map \$http_upgrade \$connection_upgrade \{(.*?)\}", conf, flags=re.S)
    assert upgrade is not None and re.findall(r"^\s*(\S+)\s+(\S+);", upgrade.group(1), flags=re.M) == \
        [("default", "upgrade"), ('""', "close")]


def test_the_swarm_proxy_shares_the_headers_and_takes_the_same_settings():
    plan = stackfile.StackPlan(stack="shop", image="shop:abc", revision="abc", public_port=8001,
                               proxy_image="local/nginx:latest", proxy_config_file="swarm-proxy.conf",
                               max_body_mb=7, read_timeout=1.5)
    conf = stackfile.proxy_conf(plan)
    assert nginx.HEADER_MAPS in conf and nginx.FORWARDED_HEADERS in conf
    assert directive(conf, "client_max_body_size") == ["7m"]
    assert directive(conf, "proxy_read_timeout") == ["1500ms"]
    other = stackfile.StackPlan(**{**plan.__dict__, "max_body_mb": 8})
    assert stackfile.proxy_config_name(other) != stackfile.proxy_config_name(plan)  # a new limit: a new config


def test_the_reference_proxy_config_forwards_as_the_generated_one_does():
    conf = REFERENCE.read_text()
    assert nginx.FORWARDED_PROTO_MAP in conf and nginx.UPGRADE_MAP in conf and nginx.FORWARDED_HEADERS in conf
    assert directive(conf, "client_max_body_size") == ["100m"]
