"""Config validation: every bad input is one ConfigError naming the key and the fix."""

import pytest

from droplet_deploy.core.config import load
from droplet_deploy.core.config_keys import DEFAULTS
from droplet_deploy.core.errors import ConfigError


def config(**overrides):
    raw = {**DEFAULTS, "app_name": "shop"}
    raw.update(overrides)
    return raw


def test_defaults_resolve_the_test_environment(root):
    settings = load(config(), root=root)
    assert settings.env == "test"
    assert settings.project == "shop-test"
    assert settings.public_port == 8001
    assert settings.image("abc") == "shop:abc"
    assert not settings.is_remote
    assert settings.health_url == "http://127.0.0.1:8001/api/health"


def test_environment_section_overrides_top_level_and_merges_build_args(root):
    raw = config(build_args={"A": "1", "B": "2"}, health_timeout=10,
                 environments={"prod": {"compose_file": "docker-compose.beta.yml", "host": "prod",
                                        "build_args": {"B": "3"}, "health_timeout": 99}})
    settings = load(raw, "prod", root=root)
    assert settings.build_args == {"A": "1", "B": "3"}
    assert settings.health_timeout == 99.0
    assert settings.is_remote and settings.host == "prod"


def test_host_flag_wins_over_configured_host(root):
    raw = config(environments={"prod": {"compose_file": "docker-compose.beta.yml", "host": "prod"}})
    assert load(raw, "prod", root=root, host="deploy@10.0.0.5").host == "deploy@10.0.0.5"


@pytest.mark.parametrize(("overrides", "env", "key", "words"), [
    ({"app_name": None}, None, "deploy.app_name", "missing"),
    ({"app_name": "My App"}, None, "deploy.app_name", "not a valid image name"),
    ({"app_port": "8000"}, None, "deploy.app_port", "must be an integer, got string"),
    ({"environments": {"test": {"public_port": "8001"}}}, "test", "deploy.environments.test.public_port",
     "must be an integer, got string"),
    ({"app_port": 70000}, None, "deploy.app_port", "must be at most 65535"),
    ({"health_timeout": True}, None, "deploy.health_timeout", "must be a number"),
    ({"health_interval": 0}, None, "deploy.health_interval", "greater than 0"),
    ({"check_endpoints": "/login"}, None, "deploy.check_endpoints", "list of strings"),
    ({"check_endpoints": ["login"]}, None, "deploy.check_endpoints", "must start with '/'"),
    ({"build_args": {"A": ["x"]}}, None, "deploy.build_args.A", "string or number"),
    ({"helth_timeout": 5}, None, "deploy.helth_timeout", "did you mean 'health_timeout'"),
    ({"compose_command": "podman"}, None, "deploy.compose_command", "not supported"),
    ({"health_revision": "image"}, None, "deploy.health_revision", "is not a way to prove the revision"),
    ({"environments": {"test": {"health_revision": "Body"}}}, "test", "deploy.environments.test.health_revision",
     "'Body' is not a way"),
    ({"health_revision": True}, None, "deploy.health_revision", "must be a string"),
    ({"keep_images": 0}, None, "deploy.keep_images", "at least 1"),
    ({"dockerfile": "missing.Dockerfile"}, None, "deploy.dockerfile", "not found"),
    ({}, "staging", "deploy.environments.staging", "no such environment"),
    ({"environments": {"test": {"compose_file": "nope.yml"}}}, "test", "deploy.environments.test.compose_file", "not found"),
    ({"environments": {"test": {"port": 1}}}, "test", "deploy.environments.test.port", "unknown key"),
    ({"environments": {"test": "yes"}}, "test", "deploy.environments.test", "must be a mapping"),
    ({"environments": ["test"]}, None, "deploy.environments", "mapping of names"),
    ({"health_timeout": None}, None, "deploy.health_timeout", "got null"),
    ({"check_command": []}, None, "deploy.check_command", "names no program"),
    ({"check_command": ["", "x"]}, None, "deploy.check_command", "names no program"),
    ({"backup_command": []}, None, "deploy.backup_command", "names no program"),
    ({"remote_dir": "srv/app"}, None, "deploy.remote_dir", "not an absolute path"),
    ({"remote_dir": "~/app"}, None, "deploy.remote_dir", "not an absolute path"),
    ({"remote_dir": "/"}, None, "deploy.remote_dir", "root directory"),
    ({"db_path": "data/app.db"}, None, "deploy.db_path", "not an absolute path"),
    ({"app_dir": "srv"}, None, "deploy.app_dir", "not an absolute path"),
    ({"app_dir": "/srv/app\n"}, None, "deploy.app_dir", "control character"),
    ({"state_dir": "state\nx"}, None, "deploy.state_dir", "control character"),
    ({"upstream_file": "/etc/nginx/up stream.conf"}, None, "deploy.upstream_file", "nginx would misread"),
    ({"upstream_file": "/etc/nginx/app.conf;x"}, None, "deploy.upstream_file", "nginx would misread"),
    ({"app_service": ""}, None, "deploy.app_service", "not a compose service name"),
    ({"app_service": "app; include /etc/passwd"}, None, "deploy.app_service", "not a compose service name"),
    ({"proxy_service": "-proxy"}, None, "deploy.proxy_service", "not a compose service name"),
    ({"proxy_service": "app"}, None, "deploy.proxy_service", "same service as app_service"),
    ({"health_path": "/api/health now"}, None, "deploy.health_path", "space or control character"),
    ({"check_endpoints": ["/ok", "/x\r\nHost: evil"]}, None, "deploy.check_endpoints", "space or control"),
    ({"proxy_image": ""}, None, "deploy.proxy_image", "not an image name"),
    ({"build_args": {"A=B": "1"}}, None, "deploy.build_args.A=B", "not a build argument name"),
    ({"lock_stale_seconds": 3}, None, "deploy.lock_stale_seconds", "at least 10"),
])
def test_each_bad_input_names_the_key_and_the_fix(root, overrides, env, key, words):
    with pytest.raises(ConfigError) as info:
        load(config(**overrides), env, root=root)
    err = info.value
    assert err.key == key
    text = str(err)
    assert words in text
    assert "\n" not in text
    assert "(" in text and text.endswith(")"), "every config error carries a fix"


@pytest.mark.parametrize("mode", ["auto", "body", "label"])
def test_health_revision_takes_each_proof(root, mode):
    assert load(config(), root=root).health_revision == "auto", "the default"
    assert load(config(health_revision=mode), root=root).health_revision == mode


def test_deploy_section_must_be_a_mapping(root):
    with pytest.raises(ConfigError, match="deploy: must be a mapping"):
        load(["x"], root=root)


def test_db_path_null_means_no_database(root):
    assert load(config(db_path=None), root=root).db_path is None


@pytest.mark.parametrize("value", ["/srv/app", "/srv/my app", "/opt/app-1.2"])
def test_container_paths_may_hold_spaces_where_they_only_travel_as_arguments(root, value):
    assert load(config(app_dir=value), root=root).app_dir == value


@pytest.mark.parametrize(("overrides", "key"), [
    ({"accept_new_host_key": True}, "deploy.accept_new_host_key"),
    ({"environments": {"prod": {"compose_file": "docker-compose.beta.yml", "host": "prod",
                                "accept_new_host_key": True}}}, "deploy.environments.prod.accept_new_host_key"),
    ({"accept_new_host_key": "yes"}, "deploy.accept_new_host_key"),
])
def test_accepting_new_host_keys_is_a_flag_never_a_setting(root, overrides, key):
    """In a file it would trust any key on every fresh CI runner: trust on first use, every time."""
    raw = config(**overrides)
    raw.setdefault("environments", {}).setdefault("prod", {"compose_file": "docker-compose.beta.yml", "host": "prod"})
    with pytest.raises(ConfigError) as info:
        load(raw, "prod", root=root)
    assert info.value.key == key
    text = str(info.value)
    assert "cannot be set in a config file" in text and "pass --accept-new-host-key" in text and "\n" not in text


def test_accept_new_host_key_false_in_a_file_is_harmless(root):
    raw = config(accept_new_host_key=False, environments={"prod": {"compose_file": "docker-compose.beta.yml"}})
    assert load(raw, "prod", root=root).accept_new_host_key is False
