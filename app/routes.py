"""Every route the service answers, in one table (``ROUTES``) so it can be counted and checked.

Handlers take ``(app, request)`` and return a ``Response``; they raise ``HttpError`` for client mistakes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import time
from typing import TYPE_CHECKING

from . import health
from .config import Config
from .web import HttpError, Request, Response, RouteTable, html_response, is_digits, json_response

if TYPE_CHECKING:
    from .server import App

MAX_QUOTE_LENGTH = 500
MAX_AUTHOR_LENGTH = 100
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
MAX_SLOW_MS = 60_000
SESSION_TTL_S = 8 * 3600

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body>
{body}
<footer><small>revision <code>{revision}</code> &middot; {env}</small></footer>
</body></html>
"""


def _page(app: App, title: str, body: str) -> Response:
    return html_response(200, _PAGE.format(
        title=html.escape(title), body=body,
        revision=html.escape(app.config.revision), env=html.escape(app.config.env),
    ))


def home(app: App, request: Request) -> Response:
    return _page(app, "deploy-demo", (
        "<h1>deploy-demo</h1>\n"
        f"<p>Serving revision <code id=\"revision\">{html.escape(app.config.revision)}</code>.</p>\n"
        '<ul><li><a href="/api/quotes">quotes</a></li><li><a href="/api/health">health</a></li>'
        '<li><a href="/login">log in</a></li></ul>'
    ))


def login_form(app: App, request: Request) -> Response:
    return _page(app, "Log in", (
        "<h1>Log in</h1>\n"
        '<form method="post" action="/login">\n'
        '<label>User <input name="username" autocomplete="username" required></label>\n'
        '<label>Password <input name="password" type="password" autocomplete="current-password" required>'
        "</label>\n"
        '<button type="submit">Log in</button>\n</form>'
    ))


def _session_cookie(app: App, user: str) -> str:
    expires = int(time.time()) + SESSION_TTL_S
    payload = base64.urlsafe_b64encode(f"{user}|{expires}".encode()).decode().rstrip("=")
    signature = hmac.new(app.secret, payload.encode(), hashlib.sha256).hexdigest()
    return f"session={payload}.{signature}; Max-Age={SESSION_TTL_S}; Path=/; HttpOnly; SameSite=Lax"


def login(app: App, request: Request) -> Response:
    form = request.form()
    user, password = form.get("username", ""), form.get("password", "")
    expected_user = app.config.demo_user
    expected_password = app.config.demo_password
    # compare both in full every time, so the answer's timing says nothing about which part was wrong
    ok = expected_user is not None and expected_password is not None
    ok = hmac.compare_digest(user.encode(), (expected_user or "").encode()) & ok
    ok = hmac.compare_digest(password.encode(), expected_password.reveal().encode() if expected_password else b"") & ok
    if not ok:
        app.log.info("login refused", extra={"user": user[:128], "request_id": request.request_id})
        return json_response(401, {"error": "invalid username or password"})
    app.log.info("login", extra={"user": user, "request_id": request.request_id})
    return json_response(200, {"status": "ok", "user": user}, {"Set-Cookie": _session_cookie(app, user)})


def _checks(app: App) -> tuple[bool, dict]:
    results = health.run_checks(app.db, app.config.ready_upstreams, app.config.ready_timeout)
    return health.summarize(results)


def api_health(app: App, request: Request) -> Response:
    ok, body = _checks(app)
    data = {"status": "healthy" if ok else "unhealthy", "revision": app.config.revision, "env": app.config.env,
            **body, "uptime_s": round(time.monotonic() - app.started, 3)}
    return json_response(200 if ok else 503, data)


def live(app: App, request: Request) -> Response:
    return json_response(200, {"status": "alive"})


def ready(app: App, request: Request) -> Response:
    ok, body = _checks(app)
    data = {"status": "ready" if ok else "unready", "revision": app.config.revision, **body}
    return json_response(200 if ok else 503, data)


def list_quotes(app: App, request: Request) -> Response:
    raw = request.arg("limit")
    limit = DEFAULT_LIST_LIMIT
    if raw is not None:
        if not is_digits(raw) or not 1 <= int(raw) <= MAX_LIST_LIMIT:
            raise HttpError(400, f"limit must be an integer 1-{MAX_LIST_LIMIT}", field="limit")
        limit = int(raw)
    quotes = app.db.list_quotes(limit)
    return json_response(200, {"quotes": quotes, "count": len(quotes)})


def validate_quote(data: object) -> tuple[str, str | None]:
    """The cleaned (text, author) of a new quote, or ``HttpError(400)`` naming every bad field."""
    if not isinstance(data, dict):
        raise HttpError(400, "request body must be a JSON object like {\"text\": \"...\", \"author\": \"...\"}")
    fields: dict[str, str] = {}
    text = data.get("text")
    if text is None:
        fields["text"] = "is required"
    elif not isinstance(text, str):
        fields["text"] = "must be a string"
    elif not text.strip():
        fields["text"] = "must not be empty"
    elif len(text.strip()) > MAX_QUOTE_LENGTH:
        fields["text"] = f"must be at most {MAX_QUOTE_LENGTH} characters (got {len(text.strip())})"
    author = data.get("author")
    if author is not None and not isinstance(author, str):
        fields["author"] = "must be a string"
    elif isinstance(author, str) and len(author.strip()) > MAX_AUTHOR_LENGTH:
        fields["author"] = f"must be at most {MAX_AUTHOR_LENGTH} characters"
    if fields:
        summary = "; ".join(f"{name} {problem}" for name, problem in fields.items())
        raise HttpError(400, f"invalid quote: {summary}", fields=fields)
    author = author.strip() if isinstance(author, str) else None
    return text.strip(), author or None


def create_quote(app: App, request: Request) -> Response:
    text, author = validate_quote(request.json())
    quote = app.db.add_quote(text, author)
    return json_response(201, quote, {"Location": f"/api/quotes/{quote['id']}"})


def get_quote(app: App, request: Request) -> Response:
    quote_id = int(request.params["id"])
    quote = app.db.get_quote(quote_id)
    if quote is None:
        raise HttpError(404, f"quote {quote_id} not found")
    return json_response(200, quote)


def slow(app: App, request: Request) -> Response:
    """Answer after ``ms`` milliseconds: lets tests hold a request in flight across a shutdown."""
    raw = request.arg("ms") or "1000"
    if not is_digits(raw) or int(raw) > MAX_SLOW_MS:
        raise HttpError(400, f"ms must be an integer 0-{MAX_SLOW_MS}", field="ms")
    time.sleep(int(raw) / 1000)
    return json_response(200, {"slept_ms": int(raw)})


ROUTES: RouteTable = {
    ("GET", "/"): home,
    ("GET", "/login"): login_form,
    ("POST", "/login"): login,
    ("GET", "/api/health"): api_health,
    ("GET", "/health/live"): live,
    ("GET", "/health/ready"): ready,
    ("GET", "/api/quotes"): list_quotes,
    ("POST", "/api/quotes"): create_quote,
    ("GET", "/api/quotes/{id}"): get_quote,
}

# Never served in production: a client-controlled sleep would be a free way to tie up worker threads.
DIAGNOSTIC_ROUTES: RouteTable = {
    ("GET", "/api/slow"): slow,
}


def route_table(config: Config) -> dict:
    table = dict(ROUTES)
    if not config.production:
        table.update(DIAGNOSTIC_ROUTES)
    return table
