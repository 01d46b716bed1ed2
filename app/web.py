"""Request/response values and the router that maps (method, path) to a handler."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

JSON = "application/json"
HTML = "text/html; charset=utf-8"
_PARAM_RE = re.compile(r"\{([a-z_]+)\}")


def is_digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts characters like '²' that int() then rejects."""
    return text.isascii() and text.isdigit()


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    request_id: str
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> Any:
        """The body as JSON; raises ``HttpError(400)`` with a reason a client can act on."""
        if not self.body:
            raise HttpError(400, "request body is empty; send a JSON object")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from None

    def form(self) -> dict[str, str]:
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == JSON:
            data = self.json()
            if not isinstance(data, dict):
                raise HttpError(400, "request body must be a JSON object")
            return {str(k): v for k, v in data.items() if isinstance(v, str)}
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "form body is not valid UTF-8") from None
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.details = details

    def response(self) -> Response:
        return json_response(self.status, {"error": self.message, **self.details}, self.headers)


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, body, JSON, {"Cache-Control": "no-store", **(headers or {})})


def html_response(status: int, text: str) -> Response:
    return Response(status, text.encode("utf-8"), HTML)


Handler = Callable[..., Response]
RouteTable = Mapping[tuple[str, str], Handler]


def _compile(template: str) -> re.Pattern[str]:
    parts, position = [], 0
    for found in _PARAM_RE.finditer(template):
        parts.append(re.escape(template[position:found.start()]))
        parts.append(f"(?P<{found.group(1)}>[0-9]{{1,18}})")
        position = found.end()
    parts.append(re.escape(template[position:]))
    return re.compile("^" + "".join(parts) + "$")


class Router:
    """Exact paths are looked up directly; templates like ``/api/quotes/{id}`` match digits only."""

    def __init__(self, routes: RouteTable) -> None:
        self.routes = dict(routes)
        self._exact: dict[tuple[str, str], Handler] = {}
        self._templates: list[tuple[str, re.Pattern[str], Handler]] = []
        for (method, template), handler in self.routes.items():
            if "{" in template:
                self._templates.append((method, _compile(template), handler))
            else:
                self._exact[(method, template)] = handler

    def __len__(self) -> int:
        return len(self.routes)

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], list[str]]:
        """(handler, path params, methods allowed on this path); no handler + methods means 405."""
        allowed: list[str] = []
        for (route_method, template), handler in self._exact.items():
            if template == path:
                if route_method == method:
                    return handler, {}, []
                allowed.append(route_method)
        for route_method, pattern, handler in self._templates:
            found = pattern.match(path)
            if found:
                if route_method == method:
                    return handler, found.groupdict(), []
                allowed.append(route_method)
        return None, {}, sorted(set(allowed))
