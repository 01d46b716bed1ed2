"""Which Python web framework a repository runs, read from its source text (pure, no imports of the user's code):
the object that is the app, and so the check verify.build runs in the image (import it, count its routes: it
must print ``<N> routes``), and the health routes its URL declarations name.

Flask (``Flask(__name__)``, or a ``create_app`` factory), FastAPI/Starlette (``FastAPI()``), Django (``manage.py``
and a settings module), a plain WSGI/ASGI callable (``application`` in a ``wsgi.py``/``asgi.py``). None found:
``check_command: null``, the check is skipped and init says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# Health routes in order of preference: the toolkit's own first, then the ones frameworks and tutorials use.
HEALTH_PATHS = ("/api/health", "/health", "/healthz", "/up", "/ping", "/hello")


@dataclass(frozen=True)
class Framework:
    name: str
    module: str  # what the check imports
    attribute: str  # the app object, or the factory called with no arguments (``create_app()``)
    where: str  # file:line it was found at

    @property
    def check_command(self) -> list[str]:
        """Imports the app in the image and prints ``<N> routes`` (verify.build's ``app imports``)."""
        return ["python3", "-c", CHECKS[self.name], self.module, self.attribute]


# Each script takes the module and the attribute as arguments (never spliced into its text) and prints one line.
_IMPORT = ("import importlib, sys; m = importlib.import_module(sys.argv[1]); a = sys.argv[2]; "
           "app = getattr(m, a[:-2])() if a.endswith('()') else getattr(m, a); ")
CHECKS = {
    "flask": _IMPORT + "print(len(list(app.url_map.iter_rules())), 'routes')",
    "fastapi": _IMPORT + "print(len(app.routes), 'routes')",
    # sys.argv[2] is the URLconf module Django's settings name anyway: the resolver reads ROOT_URLCONF.
    "django": ("import os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', sys.argv[1]); import django; "
               "django.setup(); from django.urls import get_resolver; "
               "print(len(get_resolver().url_patterns), 'routes')"),
    # A bare WSGI/ASGI callable has no route table: importing it is the check, and it counts as one route.
    "wsgi": _IMPORT + "print(1 if callable(app) else 0, 'routes')",
}

_FLASK = re.compile(r"^(\s*)(\w+)\s*=\s*Flask\(", re.MULTILINE)
_FLASK_FACTORY = re.compile(r"^def\s+(create_app|make_app)\s*\(", re.MULTILINE)
_FASTAPI = re.compile(r"^(\w+)\s*=\s*(?:FastAPI|Starlette)\(", re.MULTILINE)
_DJANGO_SETTINGS = re.compile(r"DJANGO_SETTINGS_MODULE['\"]?\s*,\s*['\"]([\w.]+)['\"]")
_CALLABLE = re.compile(r"^(application|app)\s*=", re.MULTILINE)


def module_of(name: str) -> str | None:
    """``pkg/app.py`` -> ``pkg.app``; ``pkg/__init__.py`` -> ``pkg``; None for a path that is no module name."""
    if not name.endswith(".py"):
        return None
    parts = name[:-3].replace("\\", "/").split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


def _line(text: str, at: int) -> int:
    return text.count("\n", 0, at) + 1


def _found_in(name: str, module: str, text: str) -> dict[str, Framework]:
    """Every kind of app object one source file declares, keyed by kind."""
    base, found = name.rsplit("/", 1)[-1], {}
    settings = _DJANGO_SETTINGS.search(text) if base == "manage.py" else None
    if settings:
        found["django"] = Framework("django", settings.group(1), "urls", f"{name}:{_line(text, settings.start())}")
    fastapi = _FASTAPI.search(text)
    if fastapi:
        found["fastapi"] = Framework("fastapi", module, fastapi.group(1), f"{name}:{_line(text, fastapi.start())}")
    flask = next((m for m in _FLASK.finditer(text) if not m.group(1)), None)
    factory = _FLASK_FACTORY.search(text) if "Flask(" in text else None
    if flask:
        found["flask"] = Framework("flask", module, flask.group(2), f"{name}:{_line(text, flask.start())}")
    elif factory:
        found["flask-factory"] = Framework("flask", module, factory.group(1) + "()",
                                           f"{name}:{_line(text, factory.start())}")
    plain = _CALLABLE.search(text) if base in ("wsgi.py", "asgi.py") else None
    if plain:
        found["wsgi"] = Framework("wsgi", module, plain.group(1), f"{name}:{_line(text, plain.start())}")
    return found


def detect(sources: Iterable[tuple[str, str]]) -> Framework | None:
    """The first match in order of certainty: Django (its manage.py names the settings), FastAPI, Flask (a
    module-level app, else a factory), then a plain WSGI/ASGI ``application``; the first file of each kind."""
    found: dict[str, Framework] = {}
    for name, text in sources:
        module = module_of(name)
        if module is not None:
            for kind, framework in _found_in(name, module, text).items():
                found.setdefault(kind, framework)
    return next((found[kind] for kind in ("django", "fastapi", "flask", "flask-factory", "wsgi") if kind in found),
                None)


# Django's urls.py names routes without the leading slash: path("healthz/", ...), re_path(r"^healthz/?$", ...).
_DJANGO_ROUTE = re.compile(r"\b(?:re_)?path\(\s*r?[\"']\^?(" + "|".join(re.escape(p.lstrip("/")) for p in HEALTH_PATHS)
                           + r")/?\??\$?[\"']")


def django_health_paths(sources: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(path, file:line) of the health routes a Django ``urls.py`` declares, with their leading slash. A route
    written with a trailing slash is probed with it: Django answers the bare one with a redirect."""
    found = []
    for name, text in sources:
        if not name.endswith("urls.py"):
            continue
        for match in _DJANGO_ROUTE.finditer(text):
            written = text[match.start():match.end()]
            slash = "/" if f"{match.group(1)}/" in written and "/?" not in written else ""
            found.append((f"/{match.group(1)}{slash}", f"{name}:{_line(text, match.start())}"))
    return found
