"""Config validation: every bad input is one ConfigError naming the key and the fix."""

import pytest

from deploy.config import DEFAULTS, load
from deploy.errors import ConfigError


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
    ({"app_port": 70000}, None, "deploy.app_port", "out of range"),
    ({"health_timeout": True}, None, "deploy.health_timeout", "must be a number"),
    ({"health_interval": 0}, None, "deploy.health_interval", "greater than 0"),
    ({"check_endpoints": "/login"}, None, "deploy.check_endpoints", "list of strings"),
    ({"check_endpoints": ["login"]}, None, "deploy.check_endpoints", "must start with '/'"),
    ({"build_args": {"A": ["x"]}}, None, "deploy.build_args.A", "string or number"),
    ({"helth_timeout": 5}, None, "deploy.helth_timeout", "did you mean 'health_timeout'"),
    ({"compose_command": "podman"}, None, "deploy.compose_command", "not supported"),
    ({"keep_images": 0}, None, "deploy.keep_images", "at least 1"),
    ({"dockerfile": "missing.Dockerfile"}, None, "deploy.dockerfile", "not found"),
    ({}, "staging", "deploy.environments.staging", "no such environment"),
    ({"environments": {"test": {"compose_file": "nope.yml"}}}, "test", "deploy.environments.test.compose_file", "not found"),
    ({"environments": {"test": {"port": 1}}}, "test", "deploy.environments.test.port", "unknown key"),
    ({"environments": {"test": "yes"}}, "test", "deploy.environments.test", "must be a mapping"),
    ({"environments": ["test"]}, None, "deploy.environments", "mapping of names"),
    ({"lock_stale_seconds": 3}, None, "deploy.lock_stale_seconds", "is too short"),
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


def test_deploy_section_must_be_a_mapping(root):
    with pytest.raises(ConfigError, match="deploy: must be a mapping"):
        load(["x"], root=root)
