"""Three apps nobody in this project wrote, each in a throwaway git repository the way its user would have it.

* ``flask``: the Flask tutorial's blog (``flaskr``), the ``examples/tutorial`` folder of Flask's sdist.
* ``django``: what ``django-admin startproject mysite .`` generates, from Django's wheel.
* ``fastapi``: FastAPI's "First Steps" app, ``docs_src/first_steps/tutorial001.py`` of FastAPI's sdist, as
  ``main.py``.

Their code is never kept in this repository: it is downloaded from PyPI when a test assembles the app (and cached,
see below). What is kept here, under ``thirdparty/<app>/``, is the user's side: the Dockerfile, the compose file,
``requirements.txt`` (pinned, as ``pip freeze`` writes it), ``dotenv`` (the app's ``.env``) and ``gitignore``
(appended to the app's own ``.gitignore``, if it has one), plus the few lines each user edits, applied below:

* flask: ``app.config.from_prefixed_env()`` (so ``FLASK_SECRET_KEY`` from ``.env`` becomes the secret key) and a
  ``/healthz`` route;
* django: ``DEBUG`` and ``ALLOWED_HOSTS`` from the environment (``.env`` allows the site's domain, ``localhost``
  and ``127.0.0.1``, so a request whose Host is the container's own address gets 400) and a ``/healthz`` view;
* fastapi: a ``/healthz`` route.

No registry is reachable from the build, so each repository carries its dependencies as wheels in ``wheels/``
(committed, so that a ``git archive`` of the commit builds too), and its Dockerfile installs them with
``pip install --no-index --find-links wheels -r requirements.txt`` into a venv. The wheels are downloaded on this
machine for the image's Python (CPython 3.11 on manylinux, this machine's architecture) and cached by the hash of
the requirements under ``~/.cache/droplet-deploy-tests/`` (``$DROPLET_TEST_CACHE``, else ``$XDG_CACHE_HOME``), as
are the sdists the code comes from.

The Dockerfiles start ``FROM python:3.11-slim``, as their users wrote them. Where that image cannot be pulled,
``assemble`` writes the offline base (``local/bookworm-python:latest``, which scripts/bootstrap builds, Debian's
Python 3.11 with venv) in its place; ``base_image=None`` keeps the user's line. Nothing else in them is the
toolkit's: no ``.dockerignore`` (so ``COPY . .`` ships ``.env`` into the image, as it does for these users), no
revision argument or label. Each repository's ``.env`` exists and is ignored by git, and its tree is clean.

This module starts docker, git and pip as programs and never imports the toolkit.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parent / "thirdparty"

FLASK_VERSION = "3.1.3"
DJANGO_VERSION = "5.2.19"  # the last series for Python 3.11: Django 6 needs 3.12
FASTAPI_VERSION = "0.165.0"

# What the users' Dockerfiles start from, and the Python their wheels are for: python:3.11-slim has CPython 3.11,
# and so has Debian bookworm's python3 in the offline base.
USER_BASE = "python:3.11-slim"
PYTHON_VERSION = "3.11"
GLIBC_MINOR = 36  # bookworm's glibc 2.36: wheels for manylinux_2_17 .. manylinux_2_36 run on it
DEFAULT_BASE = os.environ.get("TEST_BASE_IMAGE", "local/bookworm-python:latest")

DJANGO_PROJECT = "mysite"
DJANGO_DOMAIN = "mysite.example.com"

APPS = ("flask", "django", "fastapi")


@dataclass(frozen=True)
class Spec:
    """What is fixed about one app: where its code comes from and how its compose file names things."""

    service: str
    compose_file: str
    health_path: str
    source: str
    health_headers: dict[str, str] = field(default_factory=dict)
    container_name: str | None = None  # the compose file's container_name, if it sets one


SPECS = {
    "flask": Spec(service="web", compose_file="docker-compose.yml", health_path="/healthz",
                  source=f"flask-{FLASK_VERSION}.tar.gz (PyPI sdist): flask-{FLASK_VERSION}/examples/tutorial/"),
    "django": Spec(service="web", compose_file="compose.yaml", health_path="/healthz",
                   source=f"django-admin startproject {DJANGO_PROJECT} . from Django-{DJANGO_VERSION}-py3-none-any.whl",
                   health_headers={"Host": "localhost"}),
    "fastapi": Spec(service="app", compose_file="docker-compose.yml", health_path="/healthz",
                    source=f"fastapi-{FASTAPI_VERSION}.tar.gz (PyPI sdist): "
                           f"fastapi-{FASTAPI_VERSION}/docs_src/first_steps/tutorial001.py",
                    container_name="fastapi-app"),
}


@dataclass
class App:
    """One assembled repository: where it is, what its compose file publishes, and how to reach its health route."""

    name: str
    path: Path
    spec: Spec
    port: int
    container_name: str | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.spec.service

    @property
    def compose_file(self) -> Path:
        return self.path / self.spec.compose_file

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.spec.health_path}"

    def compose(self, project: str, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        """``docker compose -p PROJECT ARGS`` in the repository, as its user runs it (COMPOSE_* from outside unset)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
        result = subprocess.run(["docker", "compose", "-p", project, *args], cwd=self.path, env=env,
                                capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker compose -p {project} {' '.join(args)} exited {result.returncode}\n"
                               f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")
        return result

    def down(self, project: str) -> subprocess.CompletedProcess:
        """Remove what ``up`` made: containers, the network, named volumes and the images it built."""
        return self.compose(project, "down", "-v", "--rmi", "local", "--timeout", "5", check=False, timeout=300)


# --- the cache ------------------------------------------------------------------------------------------------


def cache_root() -> Path:
    if os.environ.get("DROPLET_TEST_CACHE"):
        return Path(os.environ["DROPLET_TEST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "droplet-deploy-tests"


def _pip(*args: str, timeout: float = 600) -> None:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"pip {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-2000:]}")


def _publish(tmp: Path, target: Path) -> Path:
    """Move a finished download into place; another run that finished first wins and ``tmp`` is dropped."""
    try:
        tmp.rename(target)
    except OSError:
        if not target.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def machine() -> str:
    arch = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


def wheel_platforms() -> list[str]:
    arch = machine()
    return [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 16, -1)] + [f"manylinux2014_{arch}"]


def wheels_for(requirements: str) -> tuple[Path, bool]:
    """A directory of the wheels that install ``requirements`` on the image's Python, and whether it was cached."""
    platforms = wheel_platforms()
    key = hashlib.sha256(json.dumps([requirements, PYTHON_VERSION, platforms]).encode()).hexdigest()[:16]
    target = cache_root() / "wheels" / key
    if (target / ".complete").exists():
        return target, True
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        (tmp / "requirements.txt").write_text(requirements)
        platform_args = [arg for name in platforms for arg in ("--platform", name)]
        _pip("download", "--only-binary", ":all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
             "--abi", f"cp{PYTHON_VERSION.replace('.', '')}", *platform_args, "-d", str(tmp),
             "-r", str(tmp / "requirements.txt"))
        (tmp / "requirements.txt").unlink()
        (tmp / ".complete").write_text(requirements)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _publish(tmp, target), False


def sdist(name: str, version: str) -> Path:
    """The sdist of ``name==version`` from PyPI, cached."""
    target = cache_root() / "sdists" / f"{name}-{version}"
    if (target / ".complete").exists():
        return next(target.glob("*.tar.gz"))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{version}-", dir=target.parent))
    try:
        _pip("download", "--no-deps", "--no-binary", ":all:", f"{name}=={version}", "-d", str(tmp))
        if not list(tmp.glob("*.tar.gz")):
            raise RuntimeError(f"pip download {name}=={version} brought no sdist: {sorted(os.listdir(tmp))}")
        (tmp / ".complete").write_text("")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return next(_publish(tmp, target).glob("*.tar.gz"))


def _extract(archive: Path, member_dir: str, dest: Path) -> list[str]:
    """Copy the files under ``member_dir/`` of a .tar.gz into ``dest``; the relative paths copied."""
    prefix = member_dir.rstrip("/") + "/"
    copied = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix):]
            if rel.startswith("/") or ".." in Path(rel).parts:
                raise RuntimeError(f"{archive.name}: unsafe member {member.name}")
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as src:
                out.write_bytes(src.read())
            copied.append(rel)
    if not copied:
        raise RuntimeError(f"{archive.name} has no {prefix}")
    return copied


def _edit(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of ``old``: a user's edit, which must fail loudly if upstream's text changed."""
    text = path.read_text()
    if text.count(old) != 1:
        raise RuntimeError(f"{path.name}: expected exactly one {old!r}, found {text.count(old)}")
    path.write_text(text.replace(old, new))


# --- each app's code ------------------------------------------------------------------------------------------


def _flask_code(dest: Path, timings: dict[str, float]) -> None:
    started = time.monotonic()
    archive = sdist("flask", FLASK_VERSION)
    timings["sources"] = time.monotonic() - started
    _extract(archive, f"flask-{FLASK_VERSION}/examples/tutorial", dest)
    init = dest / "flaskr" / "__init__.py"
    _edit(init, '        app.config.from_pyfile("config.py", silent=True)\n',
          '        app.config.from_pyfile("config.py", silent=True)\n'
          "        # FLASK_SECRET_KEY and the like, from the environment (.env)\n"
          "        app.config.from_prefixed_env()\n")
    _edit(init, '    @app.route("/hello")\n',
          '    @app.route("/healthz")\n    def healthz():\n        return "ok"\n\n    @app.route("/hello")\n')


def _django_code(dest: Path, timings: dict[str, float]) -> None:
    started = time.monotonic()
    wheels, _ = wheels_for((TEMPLATES / "django" / "requirements.txt").read_text())
    site = wheels / ".host-site"  # the same wheels unpacked: importable by this machine's Python
    if not (site / ".complete").exists():
        tmp = Path(tempfile.mkdtemp(prefix=".host-site-", dir=wheels))
        for wheel in sorted(wheels.glob("*.whl")):
            with zipfile.ZipFile(wheel) as zf:
                zf.extractall(tmp)
        (tmp / ".complete").write_text("")
        _publish(tmp, site)
    timings["sources"] = time.monotonic() - started
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-m", "django", "startproject", DJANGO_PROJECT, str(dest)], env=env,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"django-admin startproject exited {result.returncode}: {result.stderr[-2000:]}")
    settings = dest / DJANGO_PROJECT / "settings.py"
    _edit(settings, "from pathlib import Path\n", "import os\nfrom pathlib import Path\n")
    _edit(settings, "DEBUG = True\n", 'DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"\n')
    _edit(settings, "ALLOWED_HOSTS = []\n",
          'ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost").split(",")\n')
    urls = dest / DJANGO_PROJECT / "urls.py"
    _edit(urls, "from django.urls import path\n",
          'from django.http import HttpResponse\nfrom django.urls import path\n\n\n'
          'def healthz(request):\n    return HttpResponse("ok")\n\n')
    _edit(urls, "    path('admin/', admin.site.urls),\n",
          "    path('admin/', admin.site.urls),\n    path('healthz', healthz),\n")


def _fastapi_code(dest: Path, timings: dict[str, float]) -> None:
    started = time.monotonic()
    archive = sdist("fastapi", FASTAPI_VERSION)
    timings["sources"] = time.monotonic() - started
    with tempfile.TemporaryDirectory() as tmp:
        _extract(archive, f"fastapi-{FASTAPI_VERSION}/docs_src/first_steps", Path(tmp))
        main = (Path(tmp) / "tutorial001.py").read_text()
    (dest / "main.py").write_text(main.rstrip("\n") + '\n\n\n@app.get("/healthz")\nasync def healthz():\n'
                                  '    return {"status": "ok"}\n')


CODE = {"flask": _flask_code, "django": _django_code, "fastapi": _fastapi_code}


# --- the repository -------------------------------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "App User", "GIT_AUTHOR_EMAIL": "user@example.invalid",
           "GIT_COMMITTER_NAME": "App User", "GIT_COMMITTER_EMAIL": "user@example.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def assemble(app: str, directory: Path, *, port: int = 8000, container_name: str | None = None,
             base_image: str | None = DEFAULT_BASE) -> App:
    """Make ``directory`` (new or empty) a git repository of ``app`` with one commit, as its user has it.

    ``port`` is the host port the compose file publishes (the user's ``8000:8000`` becomes ``PORT:8000``);
    ``container_name`` replaces the compose file's own, where it sets one (two runs cannot share it);
    ``base_image`` replaces ``FROM python:3.11-slim`` (None: keep it).
    """
    spec = SPECS[app]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise RuntimeError(f"{directory} is not empty")
    named = (container_name or spec.container_name) if spec.container_name else None
    assembled = App(app, directory, spec, port, named)
    templates = TEMPLATES / app

    started = time.monotonic()
    wheels, cached = wheels_for((templates / "requirements.txt").read_text())
    assembled.timings["wheels"] = time.monotonic() - started
    assembled.timings["wheels_cached"] = float(cached)
    CODE[app](directory, assembled.timings)
    (directory / "wheels").mkdir()
    for wheel in sorted(wheels.glob("*.whl")):
        shutil.copyfile(wheel, directory / "wheels" / wheel.name)

    for name in ("Dockerfile", spec.compose_file, "requirements.txt"):
        shutil.copyfile(templates / name, directory / name)
    ignore = directory / ".gitignore"
    upstream = ignore.read_text().rstrip("\n") + "\n\n" if ignore.exists() else ""
    ignore.write_text(upstream + (templates / "gitignore").read_text())
    dotenv = (templates / "dotenv").read_text()
    dotenv = dotenv.replace("@SECRET_KEY@", secrets.token_hex(32)).replace("@DOMAIN@", DJANGO_DOMAIN)
    (directory / ".env").write_text(dotenv)

    if base_image and base_image != USER_BASE:
        _edit(directory / "Dockerfile", f"FROM {USER_BASE}\n", f"FROM {base_image}\n")
    if port != 8000:
        _edit(assembled.compose_file, '      - "8000:8000"\n', f'      - "{port}:8000"\n')
    if spec.container_name and assembled.container_name != spec.container_name:
        _edit(assembled.compose_file, f"    container_name: {spec.container_name}\n",
              f"    container_name: {assembled.container_name}\n")

    git(directory, "init", "-q", "-b", "main")
    git(directory, "add", "-A")
    git(directory, "commit", "-q", "-m", f"{app} app with its Dockerfile and compose file")
    return assembled
