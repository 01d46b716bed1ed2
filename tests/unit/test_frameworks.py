"""init, framework-aware (droplet_deploy/setup/frameworks.py, dockerignore.py, running.py): which app object the
check imports, where Django's health route is, the .dockerignore it writes, and what it says about what runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from droplet_deploy.setup import dockerignore, frameworks
from droplet_deploy.setup.running import Running
from droplet_deploy.transport.target import Result

DJANGO_MANAGE = ("import os\n\ndef main():\n    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n")
DJANGO_URLS = ("from django.urls import path\n\nurlpatterns = [\n    path('admin/', admin.site.urls),\n"
               "    path('healthz', healthz),\n    re_path(r'^up/?$', up),\n]\n")


@pytest.mark.parametrize(("sources", "expected"), [
    ([("flaskr/__init__.py", "from flask import Flask\n\ndef create_app(test_config=None):\n"
                             "    app = Flask(__name__, instance_relative_config=True)\n")],
     ("flask", "flaskr", "create_app()")),
    ([("app.py", "from flask import Flask\napp = Flask(__name__)\n")], ("flask", "app", "app")),
    ([("main.py", "from fastapi import FastAPI\n\napp = FastAPI()\n")], ("fastapi", "main", "app")),
    ([("mysite/urls.py", DJANGO_URLS), ("manage.py", DJANGO_MANAGE)], ("django", "mysite.settings", "urls")),
    ([("service/wsgi.py", "def application(environ, start_response):\n    ...\napplication = wrap(application)\n")],
     ("wsgi", "service.wsgi", "application")),
])
def test_the_app_object_is_found_for_each_framework(sources, expected):
    found = frameworks.detect(sources)
    assert found is not None and (found.name, found.module, found.attribute) == expected


def test_no_framework_means_no_check():
    assert frameworks.detect([("tool.py", "print('hello')\n"), ("README.md", "app = Flask(")]) is None


def test_the_check_imports_a_flask_factory_and_prints_its_routes(tmp_path):
    # A stand-in for Flask (not installed here): an object with a url_map, as Flask's has. The script is the one
    # verify.build runs, with the module and attribute as arguments.
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text(
        "class _Map:\n    def iter_rules(self):\n        return ['/', '/healthz', '/hello']\n"
        "class _App:\n    url_map = _Map()\n"
        "def create_app():\n    return _App()\n")
    check = frameworks.Framework("flask", "shop", "create_app()", "shop/__init__.py:5").check_command
    out = subprocess.run([sys.executable, *check[1:]], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3 routes"


def test_django_routes_are_found_without_their_leading_slash():
    assert frameworks.django_health_paths([("mysite/urls.py", DJANGO_URLS)]) == [
        ("/healthz", "mysite/urls.py:5"), ("/up", "mysite/urls.py:6")]
    assert frameworks.django_health_paths([("mysite/urls.py", "path('healthz/', view)")]) == [
        ("/healthz/", "mysite/urls.py:1")], "probed with the slash Django would redirect to"


def test_dockerignore_is_written_or_extended_and_left_alone_when_complete():
    written: list[str] = []
    kept: list[str] = []
    assert dockerignore.plan(None, written, kept) == dockerignore.HEADER + ".env\n.git\n.deploy/\n"
    extended = dockerignore.plan("node_modules\n.git/", written, kept)
    assert extended == "node_modules\n.git/\n" + dockerignore.HEADER + ".env\n.deploy/\n"
    assert dockerignore.plan(extended, written, kept) is None and kept


def result(stdout: str) -> Result:
    return Result(["docker"], 0, stdout, "")


def test_init_names_the_stack_that_runs_the_file_and_container_names_taken(tmp_path: Path):
    compose = str((tmp_path / "docker-compose.yml").resolve())
    lines = "\n".join(["\t".join(["c1", "shop-web-1", "shop", "web", compose]),
                       "\t".join(["c2", "shop-db", "shop", "db", compose])])
    running = Running(lambda argv: result(lines))
    section = {"app_name": "shop", "app_service": "web",
               "environments": {"test": {"public_port": 8001}, "prod": {}}}
    todo = running.adopt(section, {"test": "docker-compose.yml", "prod": "docker-compose.yml"},
                         {"web": "shop-web", "db": "shop-db"}, tmp_path)
    assert todo[0].startswith("the compose project 'shop' runs docker-compose.yml here today")
    assert "set deploy.environments.test.project: shop" in todo[0]
    assert todo[1].startswith("service db: container_name 'shop-db' is taken by a container of the compose "
                              "project shop") and "remove `container_name: shop-db`" in todo[1]
    assert len(todo) == 2, "the app's own container_name is dropped by a deploy: not a problem"
