"""``inv init``: set an existing repository up for deploys.

    detect (pure, from the files' text)       Dockerfile, compose files, app service and port, health routes
    plan                                      invoke.yaml, tasks.py, .gitignore: write / keep / tell
    report                                    the Dockerfile lines to add, the health answer expected, next steps

Nothing is overwritten without ``force``; a second run finds everything in place and says so.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from droplet_deploy.core.errors import InitError
from droplet_deploy.engines.compose import compose_file
from droplet_deploy.setup import dockerignore, frameworks
from droplet_deploy.setup.frameworks import HEALTH_PATHS, Framework
from droplet_deploy.setup.running import Running

# Compose's own lookup order for the default file, then the names commonly used per environment.
COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
ENV_COMPOSE_NAMES = {
    "test": ("docker-compose.test.yml", "docker-compose.test.yaml", "compose.test.yaml", "compose.test.yml"),
    "prod": ("docker-compose.prod.yml", "docker-compose.prod.yaml", "docker-compose.production.yml",
             "compose.prod.yaml", "compose.prod.yml"),
}
SOURCE_SUFFIXES = (".py", ".js", ".mjs", ".ts", ".rb", ".go", ".php", ".java", ".kt", ".rs", ".ex", ".exs", ".cs")
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".deploy", "dist", "build", ".tox", "vendor"}
MAX_SOURCE_FILES = 5000
MAX_SOURCE_BYTES = 512 * 1024

TASKS_PY = '"""Deploy tasks: `inv --list` shows them."""\n\nfrom droplet_deploy.tasks import ns\n\n__all__ = ["ns"]\n'
GITIGNORE_LINE = ".deploy/"
CONFIG_HEADER = ("# Written by `inv init`. Every key is explained in the toolkit's docs/configuration.md;\n"
                 "# `inv --dry deploy.test` shows what a deploy would do with it.\n")


# --- detection (pure) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HealthRoute:
    path: str
    where: str  # file:line of the first mention


def health_routes(sources: Iterable[tuple[str, str]]) -> list[HealthRoute]:
    """Quoted route strings among ``(name, text)`` sources, one per path, in order of preference."""
    found: dict[str, HealthRoute] = {}
    routes = "|".join(re.escape(p) for p in HEALTH_PATHS)
    pattern = re.compile("[\"'`](" + routes + ")/?[\"'`]")
    for name, text in sources:
        for match in pattern.finditer(text):
            path = match.group(1)
            if path not in found:
                found[path] = HealthRoute(path, f"{name}:{text.count(chr(10), 0, match.start()) + 1}")
    return [found[p] for p in HEALTH_PATHS if p in found]


def choose_app_service(doc: Mapping, wanted: str | None, where: str) -> str:
    """The service that runs the app: ``wanted``, else the one service built from this repository, else the one
    that publishes a port; more than one candidate is a question for the user, never a guess."""
    services = compose_file.services(doc)
    if wanted:
        if wanted not in services:
            raise InitError(f"{where} has no service {wanted!r} (services: {', '.join(services)})",
                            hint="pass --service with one of them")
        return wanted
    for candidates in ([n for n, s in services.items() if s.get("build") is not None],
                       [n for n, s in services.items() if s.get("ports")]):
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise InitError(f"{where}: more than one service could be the app ({', '.join(candidates)})",
                            hint=f"pass --service NAME, e.g. `inv init --service {candidates[0]}`")
    raise InitError(f"{where}: no service builds from this repository or publishes a port",
                    hint="pass --service NAME to name the app's service")


def build_paths(spec: Mapping) -> tuple[str, str]:
    """(context, dockerfile) of a service's ``build:`` (a path, or a mapping), relative to the project."""
    build = spec.get("build")
    if isinstance(build, str):
        return build or ".", "Dockerfile"
    if isinstance(build, dict):
        return str(build.get("context") or "."), str(build.get("dockerfile") or "Dockerfile")
    return ".", "Dockerfile"


_ARG = re.compile(r"^\s*ARG\s+REVISION\b", re.IGNORECASE | re.MULTILINE)
_LABEL = re.compile(r"^\s*LABEL\b.*org\.opencontainers\.image\.revision", re.IGNORECASE | re.MULTILINE)
_ENV = re.compile(r"^\s*ENV\b.*\bAPP_REVISION\b", re.IGNORECASE | re.MULTILINE)
_USER = re.compile(r"^\s*USER\s+(\S+)", re.IGNORECASE | re.MULTILINE)
_FROM = re.compile(r"^\s*FROM\s", re.IGNORECASE | re.MULTILINE)
_WORKDIR = re.compile(r"^\s*WORKDIR\s+(\S+)", re.IGNORECASE | re.MULTILINE)


_STAGE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)


def final_stage(dockerfile: str) -> str:
    """The text of the image's last stage and of the earlier stages it builds on (``FROM base``): what the
    final image inherits its ENV, LABELs and USER from."""
    stages = list(_STAGE.finditer(dockerfile))
    if not stages:
        return dockerfile
    texts: dict[int, tuple[str, str, str]] = {}
    for index, match in enumerate(stages):
        end = stages[index + 1].start() if index + 1 < len(stages) else len(dockerfile)
        texts[index] = (match.group(1).lower(), (match.group(2) or "").lower(), dockerfile[match.start():end])
    chain: list[tuple[int, str]] = []
    at: int | None = len(stages) - 1
    while at is not None and at not in {i for i, _ in chain}:
        base, _, text = texts[at]
        chain.append((at, text))
        at = next((i for i in range(at - 1, -1, -1) if texts[i][1] == base), None)
    return "".join(text for _, text in reversed(chain))


def dockerfile_lines_to_add(dockerfile: str) -> list[str]:
    """The lines that carry the revision into the image and run it as a non-root user, when missing."""
    stage = final_stage(dockerfile)
    missing = []
    if not _ARG.search(stage):
        missing.append("ARG REVISION=unknown")
    if not _LABEL.search(stage):
        missing.append('LABEL org.opencontainers.image.revision="$REVISION"')
    if not _ENV.search(stage):
        missing.append('ENV APP_REVISION="$REVISION"')
    users = _USER.findall(stage)
    if not users or users[-1].split(":")[0] in ("root", "0"):
        missing.append("USER 10001:10001")
    return missing


def app_dir(dockerfile: str) -> str | None:
    """Where the code sits in the image, for verify.build's bytecode search: the final stage's WORKDIR."""
    workdirs = [w.strip("\"'") for w in _WORKDIR.findall(final_stage(dockerfile))]
    return workdirs[-1] if workdirs and workdirs[-1].startswith("/") else None


def app_name(directory: str) -> str:
    name = re.sub(r"[^a-z0-9_.]+", "-", directory.lower()).strip("-._")
    return name or "app"


@dataclass(frozen=True)
class Detected:
    app_name: str
    compose_files: dict[str, str]  # environment -> compose file
    app_service: str
    app_port: int | None
    published_port: int | None
    context: str
    dockerfile: str
    dockerfile_text: str
    health: list[HealthRoute]
    reads_app_env_file: bool
    framework: Framework | None = None
    reads_dotenv: bool = False  # the app service's env_file names .env
    container_names: dict[str, str] = field(default_factory=dict)  # service -> fixed container_name
    default_check: bool = False  # the repository has the `python3 -m app --check` the default check_command runs

    @property
    def dockerfile_path(self) -> str:
        return posixpath.normpath(posixpath.join(self.context, self.dockerfile))

    @property
    def health_path(self) -> str:
        return self.health[0].path if self.health else HEALTH_PATHS[0]


def deploy_config(found: Detected) -> dict[str, Any]:
    """The ``deploy:`` section for invoke.yaml."""
    prod_port = found.published_port or 8000
    settings: dict[str, Any] = {
        "app_name": found.app_name,
        "app_service": found.app_service,
        "app_port": found.app_port or 8000,
        "health_path": found.health_path,
        "check_endpoints": [found.health_path],
    }
    if found.framework or not found.default_check:
        # Imports the app in the image and counts its routes (verify.build); null: no app object was found.
        settings["check_command"] = found.framework.check_command if found.framework else None
    if found.context != ".":
        settings["context"] = found.context
    if found.dockerfile != "Dockerfile":
        settings["dockerfile"] = found.dockerfile
    directory = app_dir(found.dockerfile_text)
    if directory:
        settings["app_dir"] = directory
    settings["db_path"] = None  # no SQLite file known: backups then hold the config and logs
    settings["environments"] = {
        "test": {"compose_file": found.compose_files["test"], "public_port": 8001 if prod_port != 8001 else 8002},
        "prod": {"compose_file": found.compose_files["prod"], "public_port": prod_port, "host": "prod",
                 # The host's secrets reach the app only through a compose file that reads ${APP_ENV_FILE}.
                 "env_file": ".env" if found.reads_app_env_file or found.reads_dotenv else None},
    }
    return settings


# --- reading the repository -----------------------------------------------------------------------------


def detect(root: Path, service: str | None = None) -> Detected:
    compose_files = find_compose_files(root)
    where = compose_files["prod"]
    text = (root / where).read_text()
    doc = compose_file.load(text, where)
    name = choose_app_service(doc, service, where)
    app = compose_file.app_service(doc, name, where)
    context, dockerfile = build_paths(compose_file.services(doc)[name])
    dockerfile_text = read_dockerfile(root, context, dockerfile, name)
    exposed = compose_file.dockerfile_exposed(dockerfile_text)
    published = app.published
    sources = list(read_sources(root))
    django = [HealthRoute(path, where) for path, where in frameworks.django_health_paths(sources)]
    env_files = compose_file.services(doc)[name].get("env_file") or []
    env_files = [env_files] if isinstance(env_files, str) else env_files
    return Detected(
        app_name=app_name(root.name),
        compose_files=compose_files,
        app_service=name,
        app_port=(app.listens_on or exposed or (None,))[0],
        published_port=published.published if published else None,
        context=context,
        dockerfile=dockerfile,
        dockerfile_text=dockerfile_text,
        health=django + [h for h in health_routes(sources) if h.path not in {d.path for d in django}],
        reads_app_env_file="APP_ENV_FILE" in text,
        framework=frameworks.detect(sources),
        reads_dotenv=any((e.get("path") if isinstance(e, dict) else e) in (".env", "./.env") for e in env_files),
        container_names={n: str(s["container_name"]) for n, s in compose_file.services(doc).items()
                         if s.get("container_name")},
        default_check=(root / "app" / "__main__.py").is_file(),
    )


def find_compose_files(root: Path) -> dict[str, str]:
    """The compose file of each environment: its own (docker-compose.test.yml, ...) else the project's one."""
    primary = next((n for n in COMPOSE_NAMES if (root / n).is_file()), None)
    per_env = {env: next((n for n in names if (root / n).is_file()), None) for env, names in ENV_COMPOSE_NAMES.items()}
    if primary is None and not any(per_env.values()):
        raise InitError(f"no compose file in {root} (looked for {', '.join(COMPOSE_NAMES)})",
                        hint="write the compose file you run the app with, then run init again")
    return {env: name or primary or next(n for n in per_env.values() if n) for env, name in per_env.items()}


def read_dockerfile(root: Path, context: str, dockerfile: str, service: str) -> str:
    path = root / context / dockerfile
    if not path.is_file():
        raise InitError(f"no Dockerfile at {path.relative_to(root) if path.is_relative_to(root) else path}",
                        hint="the app is deployed from an image built here: add a Dockerfile "
                             f"(or point service {service}'s build: at it)")
    return path.read_text()


def read_sources(root: Path) -> Iterable[tuple[str, str]]:
    """(relative name, text) of the repository's source files, bounded in number and size."""
    seen = 0
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(SOURCE_SUFFIXES):
                continue
            path = Path(directory, name)
            seen += 1
            if seen > MAX_SOURCE_FILES:
                return
            try:
                if path.stat().st_size <= MAX_SOURCE_BYTES:
                    yield str(path.relative_to(root)), path.read_text(errors="replace")
            except OSError:
                continue


# --- writing --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a run did and what is left to the user, in the order it is printed."""

    written: list[str] = field(default_factory=list)
    in_place: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.written and not self.todo


def render_config(existing: str | None, section: dict[str, Any]) -> str:
    """invoke.yaml with ``section`` as its ``deploy:`` (the rest of an existing file kept)."""
    body = yaml.safe_load(existing) if existing else None
    merged = {**(body if isinstance(body, dict) else {}), "deploy": section}
    return CONFIG_HEADER + yaml.safe_dump(merged, sort_keys=False, default_flow_style=False, width=110)


def has_deploy_section(text: str) -> bool:
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return isinstance(body, dict) and isinstance(body.get("deploy"), dict)


def plan_config(existing: str | None, section: dict[str, Any], force: bool, out: Outcome) -> str | None:
    """The new invoke.yaml text, or None to leave the file as it is."""
    if existing is None:
        out.written.append("invoke.yaml: the deploy settings")
        return render_config(None, section)
    if has_deploy_section(existing) and not force:
        out.in_place.append("invoke.yaml has a deploy section (kept; --force rewrites it)")
        return None
    if existing.strip() and not isinstance(_safe_load(existing), dict):
        raise InitError("invoke.yaml is not a YAML mapping", hint="fix or move it, then run init again")
    out.written.append("invoke.yaml: " + ("the deploy section rewritten (--force)" if has_deploy_section(existing)
                                          else "a deploy section added, the rest kept"))
    return render_config(existing, section)


def _safe_load(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def plan_tasks(existing: str | None, force: bool, out: Outcome) -> str | None:
    if existing is not None and "deploy.tasks" in existing:
        out.in_place.append("tasks.py imports droplet_deploy.tasks")
        return None
    if existing is None or force:
        out.written.append("tasks.py: " + ("replaced (--force)" if existing is not None
                                           else "`from droplet_deploy.tasks import ns`"))
        return TASKS_PY
    out.todo.append("tasks.py is your own: import the deploy tasks into it (`from droplet_deploy.tasks import ns` is "
                    "the whole file init writes), or rerun with --force to replace it")
    return None


def plan_gitignore(existing: str | None, out: Outcome) -> str | None:
    """The deploy state (lock, history, the compose override) lives in .deploy/: ignored, the tree stays clean."""
    lines = {line.strip() for line in (existing or "").splitlines()}
    if lines & {".deploy", ".deploy/", "/.deploy", "/.deploy/"}:
        out.in_place.append(".gitignore ignores .deploy/")
        return None
    out.written.append(".gitignore: .deploy/ (the local deploy state)")
    text = existing or ""
    return text + ("" if not text or text.endswith("\n") else "\n") + GITIGNORE_LINE + "\n"


def advice(found: Detected) -> tuple[list[str], list[str]]:
    """(what the user still has to do, what init found and chose) about the Dockerfile, health route and port."""
    todo, info = [], []
    missing = dockerfile_lines_to_add(found.dockerfile_text)
    if missing:
        todo.append(f"add to the final stage of {found.dockerfile_path}, "
                    "after the code is copied:")
        todo += [f"    {line}" for line in missing]
    if not found.health:
        todo.append(f"no health route found in the source (looked for {', '.join(HEALTH_PATHS)}): "
                    f"add {found.health_path}")
    else:
        info.append("health routes found: " + ", ".join(f"{h.path} ({h.where})" for h in found.health)
                    + f"; using {found.health_path}")
    if found.app_port is None:
        todo.append("no app port found (ports, expose, EXPOSE): assumed 8000; set deploy.app_port")
    if found.default_check and not found.framework:
        info.append("check_command: the default `python3 -m app --check`, app/__main__.py is there")
    elif found.framework:
        info.append(f"{found.framework.name} app {found.framework.module}:{found.framework.attribute} "
                    f"({found.framework.where}): verify.build imports it and counts its routes")
    else:
        info.append("no Flask, Django, FastAPI or WSGI/ASGI app object found: check_command: null (verify.build "
                    "does not import the app; set check_command to a command that prints `<N> routes`)")
    if found.reads_dotenv and not found.reads_app_env_file:
        todo.append(f"on a host the env file is {{remote_dir}}/shared/.env: in {found.compose_files['prod']}, write "
                    f"service {found.app_service}'s `env_file: .env` as `env_file: ${{APP_ENV_FILE:-.env}}`")
    return todo, info


HEALTH_ANSWER = ("GET {path} must answer 2xx once the app is up: plain `ok` is enough (the revision is then proven by "
                 'the image label of the container that answered); JSON {{"status": "healthy", "revision": '
                 '"<APP_REVISION>"}} proves it by the body')


def run(root: Path, *, service: str | None, force: bool, write: Callable[[str, str], None],
        say: Callable[[str], None], running: Running | None = None) -> Outcome:
    """Detect, write what is missing through ``write(relative path, text)``, and report through ``say``;
    ``running``: what the local engine runs (a stack to take over, container names taken)."""
    found = detect(root, service)
    out = Outcome()
    section = deploy_config(found)
    if running is not None:
        out.todo += running.adopt(section, found.compose_files, found.container_names, root)
    files = {
        "invoke.yaml": plan_config(_read(root / "invoke.yaml"), section, force, out),
        "tasks.py": plan_tasks(_read(root / "tasks.py"), force, out),
        ".gitignore": plan_gitignore(_read(root / ".gitignore"), out),
        ".dockerignore": dockerignore.plan(_read(root / found.context / ".dockerignore"), out.written, out.in_place),
    }
    for name, text in files.items():
        if text is not None:
            write(posixpath.normpath(posixpath.join(found.context, name)) if name == ".dockerignore" else name, text)
    say(f"app service {found.app_service} (port {found.app_port or 8000}) in {found.compose_files['test']}"
        + (f" / {found.compose_files['prod']}" if found.compose_files["prod"] != found.compose_files["test"] else "")
        + f", image from {found.dockerfile_path}, health {found.health_path}")
    for line in out.written:
        say(f"wrote {line}")
    for line in out.in_place:
        say(f"in place: {line}")
    todo, info = advice(found)
    out.todo += todo
    for line in info + out.todo:
        say(line)
    say(HEALTH_ANSWER.format(path=found.health_path))
    if out.complete:
        say("everything is in place: `inv --dry deploy.test` shows the deploy, `inv deploy.test` runs it")
    else:
        say("next: review invoke.yaml, commit, then `inv --dry deploy.test` and `inv deploy.test`")
    return out


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None
