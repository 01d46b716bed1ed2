"""A configuration Invoke cannot load is one `config error:` line, found from a real Invoke Config's failure."""

import os

import pytest
from invoke import Config

from droplet_deploy.core.config_keys import DEFAULTS
from droplet_deploy.tasks import config_errors


def failure(tmp_path, text: str | None = None, *, runtime: str | None = None, env: dict | None = None):
    """Load config the way `inv` does (project file, collection defaults, runtime file, env) and return the
    exception that escapes, with its traceback."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    if text is not None:
        (project / "invoke.yaml").write_text(text)
    runtime_path = None
    if runtime is not None:
        runtime_path = tmp_path / "runtime.yaml"
        runtime_path.write_text(runtime)
    # No /etc or ~ files: the developer's own ~/.invoke.yaml must not take part.
    config = Config(system_prefix=str(tmp_path / "none-system."), user_prefix=str(tmp_path / "none-user."),
                    project_location=str(project), runtime_path=str(runtime_path) if runtime_path else None)
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        config.load_project()
        config.load_runtime()
        config.load_collection({"deploy": DEFAULTS})
        config.load_shell_env()
    except Exception as exc:  # noqa: BLE001 - the point is to see what escapes Invoke
        return exc
    finally:
        os.environ.clear()
        os.environ.update(saved)
    pytest.fail("the configuration loaded")


def explained(exc) -> str:
    error = config_errors.explain(exc, exc.__traceback__)
    assert error is not None, f"not recognised: {exc!r}"
    text = str(error)
    assert "\n" not in text and error.exit_code == 2
    return text


def test_a_yaml_syntax_error_names_the_file_line_column_and_problem(tmp_path):
    text = explained(failure(tmp_path, "deploy:\n  app_name: [shop\n"))
    assert text.startswith(f"config error: {tmp_path / 'project' / 'invoke.yaml'}: invalid YAML at line 3, column 1")
    assert "expected ',' or ']'" in text and "flow sequence at line 2, column 13" in text


def test_a_tab_in_the_runtime_file_is_a_yaml_error_in_that_file(tmp_path):
    text = explained(failure(tmp_path, runtime="deploy:\n\tapp_name: shop\n"))
    assert f"{tmp_path / 'runtime.yaml'}: invalid YAML at line 2, column 1" in text


@pytest.mark.parametrize(("text", "words"), [
    ("deploy: 5\n", "deploy: must be a mapping, got integer 5"),
    ("deploy:\n", "deploy: must be a mapping, got null"),
    ("deploy:\n  environments: [test]\n", "deploy.environments: must be a mapping, got list"),
    ("deploy:\n  environments:\n    prod: yes\n", "deploy.environments.prod: must be a mapping, got true/false"),
    ("- deploy\n", "must hold a mapping of settings, got list"),
])
def test_a_section_that_is_not_a_mapping_is_named_with_its_file(tmp_path, text, words):
    message = explained(failure(tmp_path, text))
    assert words in message
    assert "invoke.yaml" in message


def test_an_environment_variable_of_the_wrong_type_is_named(tmp_path):
    message = explained(failure(tmp_path, "", env={"INVOKE_DEPLOY_PUBLIC_PORT": "eighty"}))
    assert message.startswith("config error: INVOKE_DEPLOY_PUBLIC_PORT: 'eighty' cannot be read as "
                              "deploy.public_port, which takes an integer")


def test_a_list_cannot_come_from_an_environment_variable(tmp_path):
    message = explained(failure(tmp_path, "", env={"INVOKE_DEPLOY_CHECK_COMMAND": "true"}))
    assert "deploy.check_command is a list and cannot come from an environment variable" in message


def test_failures_elsewhere_are_left_to_the_normal_traceback():
    try:
        int("x")
    except ValueError as exc:
        assert config_errors.explain(exc, exc.__traceback__) is None
