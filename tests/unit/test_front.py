"""The front proxy's pure parts: its settings, what one environment's route claims, and the Caddy config all the
routes make (which name is redirected, maintenance, HSTS, path prefixes, certificate files)."""

from __future__ import annotations

import pytest

from droplet_deploy.commands import front as cmd
from droplet_deploy.core import config
from droplet_deploy.core.errors import ConfigError
from droplet_deploy.front import caddy_config, route
from droplet_deploy.front.route import Listeners


def settings(tmp_path, **env):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "docker-compose.test.yml").write_text("services: {}\n")
    return config.load({"app_name": "shop", "environments": {"test": {"project": "shop-test", **env}}},
                       root=tmp_path)


def test_front_settings_default_to_no_host_names_and_the_standard_ports(tmp_path):
    s = settings(tmp_path)
    assert s.hosts == [] and (s.http_port, s.https_port) == (80, 443)
    assert s.tls == "auto" and s.hsts is False and s.acme_directory.startswith("https://acme-v02.")


def test_host_names_are_normalised(tmp_path):
    assert settings(tmp_path, hosts=["Shop.Example.com.", "www.shop.example.com"]).hosts == \
        ["shop.example.com", "www.shop.example.com"]


@pytest.mark.parametrize("env, key, words", [
    ({"hosts": ["shop example.com"]}, "hosts", "is not a host name"),
    ({"hosts": ["a.example.com", "A.example.com"]}, "hosts", "twice"),
    ({"path_prefix": "/api"}, "path_prefix", "hosts is empty"),
    ({"hosts": ["a.example.com"], "path_prefix": "api"}, "path_prefix", "is not a path prefix"),
    ({"tls": "on"}, "tls", "is not a TLS mode"),
    ({"tls_certificate": "/etc/ssl/a.pem"}, "tls_key", "is missing while tls_certificate is set"),
    ({"acme_directory": "http://ca.example/dir"}, "acme_directory", "is not an ACME directory URL"),
    ({"acme_email": "ops"}, "acme_email", "is not an email address"),
    ({"front_bind": "everywhere"}, "front_bind", "is not an IP address"),
    ({"https_port": 80}, "https_port", "is 80, as http_port is"),
    ({"http_port": 0}, "http_port", "at least 1"),
])
def test_bad_front_settings_are_one_line_naming_the_key(tmp_path, env, key, words):
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, **env)
    assert caught.value.key.endswith(f".{key}")  # the environment's key, or the shared one a missing key falls to
    assert words in str(caught.value) and "\n" not in str(caught.value)


LISTEN = Listeners(80, 443, None, 2019)


def a_route(project="shop-test", hosts=("shop.example.com",), port=8000, **extra):
    fields = dict(project=project, env="test", app=project.split("-")[0], hosts=tuple(hosts), path=None,
                  upstream_port=port, listeners=LISTEN, acme_directory="https://ca.example/dir")
    fields.update(extra)
    return route.Route(**fields)


def test_a_route_survives_its_file():
    original = a_route(maintenance={"message": "back soon"}, ca_bundle="/etc/droplet-front/ca/shop-test.pem")
    assert route.parse(original.to_json() + "\n\n") == [original]


def test_a_name_claimed_by_another_environment_is_refused_naming_both():
    mine, other = a_route(), a_route(project="blog-prod", hosts=("blog.example.com", "shop.example.com"))
    line = route.conflict(mine, [other])
    assert line is not None and "shop.example.com" in line
    assert "shop test (project shop-test)" in line and "blog test (project blog-prod)" in line
    # The same name under another path prefix is another route; the environment's own earlier route is no rival.
    assert route.conflict(a_route(path="/blog"), [a_route(project="blog-prod")]) is None
    assert route.conflict(mine, [a_route()]) is None


def test_listeners_must_agree_across_environments():
    other = a_route(project="blog-prod", hosts=("blog.example.com",), listeners=Listeners(8080, 443, None, 2019))
    line = route.listener_mismatch(a_route(), [other])
    assert line is not None and "HTTP 8080" in line and "set the same http_port" in line


def test_a_redeploy_keeps_maintenance_on():
    earlier = a_route(maintenance={"message": "upgrading"})
    merged = route.merged(a_route(port=9000), [earlier, a_route(project="blog-prod", hosts=("b.example",))])
    assert [r.project for r in merged] == ["blog-prod", "shop-test"]
    assert merged[1].maintenance == {"message": "upgrading"} and merged[1].upstream_port == 9000


def test_a_refusal_names_its_own_host_only():
    from droplet_deploy.front.publish import _refusals

    errors = [{"level": "error", "identifier": "elsewhere.b.app.test",
               "error": "[elsewhere.b.app.test] solving challenges: 127.0.0.2: connection refused"}]
    assert _refusals(errors, ["b.app.test", "elsewhere.b.app.test"]) == {"elsewhere.b.app.test": errors[0]["error"]}
    cancelled = [{"level": "error", "identifier": "b.app.test", "error": "context canceled"}]
    assert _refusals(cancelled, ["b.app.test"]) == {}


def handlers(config, server, host):
    for entry in config["apps"]["http"]["servers"][server]["routes"]:
        if "match" in entry and host in entry["match"][0]["host"]:
            return entry["handle"]
    return None


def test_http_redirects_only_names_that_have_a_certificate():
    shop = a_route(hosts=("shop.example.com", "www.shop.example.com"))
    config = caddy_config.build(LISTEN, [shop], {"shop.example.com"})
    assert handlers(config, "http", "shop.example.com")[0]["status_code"] == 308
    assert handlers(config, "http", "www.shop.example.com")[-1]["handler"] == "reverse_proxy"
    assert handlers(config, "https", "www.shop.example.com")[-1]["upstreams"] == [{"dial": "127.0.0.1:8000"}]
    policy = config["apps"]["tls"]["automation"]["policies"][0]
    assert policy["subjects"] == ["shop.example.com", "www.shop.example.com"]
    assert policy["issuers"][0]["ca"] == "https://ca.example/dir"
    # Caddy's own redirect would send a name to HTTPS before its certificate exists.
    assert all(s["automatic_https"] == {"disable_redirects": True}
               for s in config["apps"]["http"]["servers"].values())
    assert config["admin"] == {"listen": "127.0.0.1:2019"}


def test_a_redirect_names_a_https_port_other_than_443():
    config = caddy_config.build(Listeners(8080, 8443, "127.0.0.1", 2019), [a_route()], {"shop.example.com"})
    location = handlers(config, "http", "shop.example.com")[0]["headers"]["Location"][0]
    assert location == "https://{http.request.host}:8443{http.request.uri}"
    assert config["apps"]["http"]["servers"]["http"]["listen"] == ["127.0.0.1:8080"]


def test_maintenance_answers_503_with_retry_after_for_that_environment_only():
    shop = a_route(maintenance={"message": "Back at <14:00>"})
    blog = a_route(project="blog-prod", hosts=("blog.example.com",), port=8100)
    config = caddy_config.build(LISTEN, [shop, blog], set())
    page = handlers(config, "https", "shop.example.com")[0]
    assert page["status_code"] == 503 and page["headers"]["Retry-After"] == ["300"]
    assert "Back at &lt;14:00&gt;" in page["body"]
    assert handlers(config, "https", "blog.example.com")[-1]["handler"] == "reverse_proxy"


def test_hsts_is_sent_on_https_only_when_asked():
    plain = handlers(caddy_config.build(LISTEN, [a_route()], set()), "https", "shop.example.com")
    assert "headers" not in [h["handler"] for h in plain]
    first = handlers(caddy_config.build(LISTEN, [a_route(hsts=True)], set()), "https", "shop.example.com")[0]
    assert first["response"]["set"]["Strict-Transport-Security"] == ["max-age=31536000"]


def test_longer_path_prefixes_come_first_and_unknown_names_get_404():
    config = caddy_config.build(LISTEN, [a_route(), a_route(project="api-prod", path="/api", port=8200)], set())
    routes = config["apps"]["http"]["servers"]["http"]["routes"]
    assert routes[0]["match"][0]["path"] == ["/api", "/api/*"]
    assert routes[-1] == {"handle": [{"handler": "static_response", "status_code": 404,
                                      "body": caddy_config.NOT_FOUND}]}


def test_certificate_files_are_loaded_and_redirect_at_once_and_tls_off_is_http_only():
    files = a_route(certificate="/etc/droplet-front/certs/shop-test.crt", key="/etc/droplet-front/certs/shop-test.key")
    plain = a_route(project="intra-prod", hosts=("intra.example.com",), tls="off")
    config = caddy_config.build(LISTEN, [files, plain], set())
    assert config["apps"]["tls"] == {"certificates": {"load_files": [
        {"certificate": files.certificate, "key": files.key, "tags": ["shop-test"]}]}}
    assert handlers(config, "http", "shop.example.com")[0]["status_code"] == 308
    assert handlers(config, "http", "intra.example.com")[-1]["handler"] == "reverse_proxy"
    assert handlers(config, "https", "intra.example.com") is None


def test_the_front_container_is_on_the_host_network_back_after_a_reboot_with_its_certificates_in_a_volume():
    argv = cmd.run("droplet-front", "droplet-front.abc", "caddy:2", "/var/lib/droplet-deploy/front")
    assert argv[argv.index("--restart") + 1] == "unless-stopped"
    assert argv[argv.index("--network") + 1] == "host"
    assert "droplet-front-data:/data" in argv and "/var/lib/droplet-deploy/front:/etc/droplet-front:ro" in argv
    assert f"{cmd.LABEL}=droplet-front" in argv


def test_maintenance_needs_host_names_and_a_short_message(tmp_path):
    from droplet_deploy.core.errors import UsageError
    from droplet_deploy.front import maintenance
    from droplet_deploy.session import Session

    session = Session(settings(tmp_path), None, None)  # type: ignore[arg-type]  # refused before any command
    with pytest.raises(UsageError, match="has no host names, and maintenance is served by the front proxy"):
        maintenance.switch(session, on=True)
    named = Session(settings(tmp_path, hosts=["shop.example.com"]), None, None)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="--message must be 1 to 500 characters"):
        maintenance.switch(named, on=True, message="x" * 501)


def test_body_size_gzip_and_read_timeout_reach_the_front_config(tmp_path):
    s = settings(tmp_path, hosts=["shop.example.com"], max_body_mb=20, read_timeout=120, gzip=False)
    config = caddy_config.build(LISTEN, [route.of(s, cmd.MOUNT)], set())
    body, proxy = handlers(config, "https", "shop.example.com")
    assert body == {"handler": "request_body", "max_size": 20 * 1024 * 1024}
    assert proxy["transport"]["response_header_timeout"] == 120 * 1_000_000_000
    defaults = handlers(caddy_config.build(LISTEN, [a_route()], set()), "https", "shop.example.com")
    assert [h["handler"] for h in defaults] == ["request_body", "encode", "reverse_proxy"]
    assert defaults[0]["max_size"] == 100 * 1024 * 1024
    unlimited = handlers(caddy_config.build(LISTEN, [a_route(max_body_mb=0)], set()), "https", "shop.example.com")
    assert [h["handler"] for h in unlimited] == ["encode", "reverse_proxy"]
