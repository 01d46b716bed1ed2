"""Lint as tests: every Dockerfile passes hadolint, every compose file passes `docker compose config`, the Python
code passes ruff."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from .helpers import REPO, output, run, tool

SKIP_DIRS = {".git", ".venv", "node_modules", ".pytest_cache", ".ruff_cache", ".hypothesis", "__pycache__"}

# Rules that do not apply to one file, with the reason. Anything else hadolint reports fails the test.
HADOLINT_IGNORES: dict[str, dict[str, str]] = {
    "proxy/local.Dockerfile": {
        "DL3007": "FROM local/bookworm-python:latest is built on this machine by scripts/bootstrap (mmdebstrap + "
                  "docker import) and never pulled, so there is no release tag to pin",
    },
}

# What the compose files interpolate; the deploy tool sets these on every run.
COMPOSE_VARIABLES = {
    "APP_IMAGE": "deploy-demo:0123456789ab",
    "PROXY_IMAGE": "nginx:1.27-alpine",
    "PUBLIC_PORT": "8001",
    "BASE_IMAGE": "python:3.12-slim",
    "DEV_IMAGE": "deploy-demo:dev",
}


def project_files(match) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(REPO):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        found += [Path(dirpath, f) for f in sorted(filenames) if match(f)]
    return found


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


DOCKERFILES = project_files(lambda name: name == "Dockerfile" or name.endswith(".Dockerfile")
                            or name.startswith("Dockerfile."))
COMPOSE_FILES = [p for p in project_files(lambda name: name.startswith(("docker-compose", "compose"))
                                          and name.endswith((".yml", ".yaml"))) if p.parent == REPO]


def test_the_lint_targets_are_found():
    assert "Dockerfile" in [rel(p) for p in DOCKERFILES]
    assert {"docker-compose.test.yml", "docker-compose.beta.yml"} <= {rel(p) for p in COMPOSE_FILES}


# --- hadolint -----------------------------------------------------------------------------------------------


def test_hadolint_is_the_real_binary():
    result = run([tool("hadolint"), "--version"])
    assert result.returncode == 0 and "Haskell Dockerfile Linter" in result.stdout, output(result)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=rel)
def test_dockerfile_passes_hadolint(dockerfile):
    ignores = HADOLINT_IGNORES.get(rel(dockerfile), {})
    argv = [tool("hadolint"), "--no-color"]
    for rule in sorted(ignores):
        argv += ["--ignore", rule]
    result = run([*argv, rel(dockerfile)])
    assert result.returncode == 0, output(result)


def test_hadolint_still_fails_a_bad_dockerfile(tmp_path):
    """Proves the check above can fail: an unpinned base and `cd` in RUN are findings."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN cd /tmp && echo hi\n")
    result = run([tool("hadolint"), "--no-color", str(bad)])
    assert result.returncode != 0
    assert "DL3006" in result.stdout and "DL3003" in result.stdout, output(result)


# --- docker compose config ----------------------------------------------------------------------------------


def env_files(compose: dict) -> list[str]:
    """Every env_file a compose file names (the short string form, a list, or the long {path: ...} form)."""
    names = []
    for service in (compose.get("services") or {}).values():
        entries = service.get("env_file") or []
        for entry in [entries] if isinstance(entries, (str, dict)) else entries:
            if isinstance(entry, dict):
                if entry.get("required", True):
                    names.append(entry["path"])
            else:
                names.append(entry)
    return names


def copy_for_compose(compose_file: Path, workdir: Path) -> Path:
    """A copy of the repository (without .git and caches) where missing `.env` files can be created safely."""
    shutil.copytree(REPO, workdir, ignore=shutil.ignore_patterns(*SKIP_DIRS, "*.egg-info", ".deploy", "backups"),
                    symlinks=True)
    copy = workdir / compose_file.name
    example = (REPO / ".env.example").read_text()
    for name in env_files(yaml.safe_load(compose_file.read_text()) or {}):
        name = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", name)  # ${APP_ENV_FILE:-.env}: the default, as compose would
        target = workdir / name
        if not target.exists():
            assert Path(name).name == ".env", (
                f"{rel(compose_file)} needs {name}, which is not in the repository; only .env may be host-only")
            # The real .env lives on the host only; the example has every variable with a safe value.
            target.write_text(example)
    return copy


@pytest.mark.integration
@pytest.mark.parametrize("compose_file", COMPOSE_FILES, ids=rel)
def test_compose_file_passes_docker_compose_config(compose_file, tmp_path):
    had_env = (REPO / ".env").exists()
    copy = copy_for_compose(compose_file, tmp_path / "repo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.update(COMPOSE_VARIABLES)
    result = run(["docker", "compose", "-f", copy.name, "config", "-q"], cwd=copy.parent, env=env)
    assert result.returncode == 0, output(result)
    assert (REPO / ".env").exists() == had_env, "the check must never create .env in the repository"


# --- ruff ---------------------------------------------------------------------------------------------------


def test_ruff_passes_on_the_whole_tree():
    result = run([tool("ruff"), "check", "--no-cache", "--output-format", "concise", "."])
    assert result.returncode == 0, output(result)
