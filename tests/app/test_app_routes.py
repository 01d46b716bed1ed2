"""Every route of the running service, over real HTTP."""

from __future__ import annotations

import json

import pytest
from app_testing import REVISION, raw_exchange

from app.routes import DIAGNOSTIC_ROUTES, ROUTES


def test_route_table_has_the_documented_routes():
    assert set(ROUTES) == {
        ("GET", "/"), ("GET", "/login"), ("POST", "/login"), ("GET", "/api/health"), ("GET", "/health/live"),
        ("GET", "/health/ready"), ("GET", "/api/quotes"), ("POST", "/api/quotes"), ("GET", "/api/quotes/{id}"),
    }
    assert set(DIAGNOSTIC_ROUTES) == {("GET", "/api/slow")}


def test_home_page_shows_the_revision(service):
    response = service.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert REVISION in response.text


def test_login_form_is_a_form_posting_to_login(service):
    response = service.get("/login")
    assert response.status_code == 200
    assert '<form method="post" action="/login">' in response.text
    assert 'name="password" type="password"' in response.text


def test_login_is_refused_when_no_demo_user_is_configured(service):
    response = service.post("/login", data={"username": "admin", "password": "admin"})
    assert response.status_code == 401
    assert response.json() == {"error": "invalid username or password"}


def test_login_with_demo_credentials(start_service):
    running = start_service(APP_DEMO_USER="demo", APP_DEMO_PASSWORD="pw-marker-7f3a9c")
    wrong = running.post("/login", data={"username": "demo", "password": "nope"})
    assert wrong.status_code == 401
    right = running.post("/login", data={"username": "demo", "password": "pw-marker-7f3a9c"})
    assert right.status_code == 200
    assert right.json() == {"status": "ok", "user": "demo"}
    assert "HttpOnly" in right.headers["Set-Cookie"]
    as_json = running.post("/login", json={"username": "demo", "password": "pw-marker-7f3a9c"})
    assert as_json.status_code == 200
    assert "pw-marker-7f3a9c" not in running.log_path.read_text()


def test_live(service):
    response = service.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}


def test_api_health_reports_revision_checks_and_uptime(service):
    response = service.get("/api/health")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "healthy"
    assert data["revision"] == REVISION
    assert data["checks"]["database"]["status"] == "ok"
    assert data["uptime_s"] >= 0
    assert "failed" not in data
    assert response.headers["Cache-Control"] == "no-store"


def test_ready_checks_the_database_with_latency(service):
    response = service.get("/health/ready")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "ready"
    assert data["checks"]["database"]["status"] == "ok"
    assert data["checks"]["database"]["latency_ms"] >= 0


def test_quotes_round_trip(service):
    assert service.get("/api/quotes").json() == {"quotes": [], "count": 0}
    created = service.post("/api/quotes", json={"text": "  Ship small, ship often.  ", "author": "ops"})
    assert created.status_code == 201
    quote = created.json()
    assert quote["text"] == "Ship small, ship often."
    assert quote["author"] == "ops"
    assert created.headers["Location"] == f"/api/quotes/{quote['id']}"
    assert service.get(f"/api/quotes/{quote['id']}").json() == quote
    service.post("/api/quotes", json={"text": "no author"})
    listed = service.get("/api/quotes").json()
    assert listed["count"] == 2
    assert listed["quotes"][0] == quote
    assert listed["quotes"][1]["author"] is None
    assert service.get("/api/quotes", params={"limit": "1"}).json()["count"] == 1


def test_quotes_survive_a_restart(start_service, tmp_path):
    first = start_service(tmp_path)
    first.post("/api/quotes", json={"text": "persisted"})
    first.service.stop()
    second = start_service(tmp_path)
    assert [q["text"] for q in second.get("/api/quotes").json()["quotes"]] == ["persisted"]


@pytest.mark.parametrize(("body", "field", "problem"), [
    ({}, "text", "is required"),
    ({"text": ""}, "text", "must not be empty"),
    ({"text": "   \n\t"}, "text", "must not be empty"),
    ({"text": 42}, "text", "must be a string"),
    ({"text": "x" * 501}, "text", "at most 500"),
    ({"text": "fine", "author": ["a"]}, "author", "must be a string"),
    ({"text": "fine", "author": "a" * 101}, "author", "at most 100"),
])
def test_invalid_quotes_are_rejected_naming_the_field(service, body, field, problem):
    response = service.post("/api/quotes", json=body)
    assert response.status_code == 400
    data = response.json()
    assert problem in data["fields"][field]
    assert field in data["error"]


def test_a_quote_of_exactly_500_characters_is_accepted(service):
    assert service.post("/api/quotes", json={"text": "x" * 500}).status_code == 201


@pytest.mark.parametrize(("raw", "expected"), [
    (b"", "empty"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_bad_quote_bodies_get_a_clear_error(service, raw, expected):
    response = service.post("/api/quotes", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert expected in response.json()["error"]


@pytest.mark.parametrize("limit", ["0", "abc", "1001", "-1", "\u00b2", "\u0663"])
def test_bad_list_limit(service, limit):
    response = service.get("/api/quotes", params={"limit": limit})
    assert response.status_code == 400
    assert response.json()["field"] == "limit"


def test_missing_quote_is_404(service):
    response = service.get("/api/quotes/999")
    assert response.status_code == 404
    assert response.json() == {"error": "quote 999 not found"}


@pytest.mark.parametrize("path", ["/nope", "/api/quotes/abc", "/api/quotes/1/x", "/api/quotes/", "/api"])
def test_unknown_paths_are_404_json(service, path):
    response = service.get(path)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "not found"


def test_wrong_method_is_405_with_allow(service):
    response = service.post("/api/health", json={})
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.json()["allowed"] == ["GET"]


def test_head_answers_headers_only(service):
    response = service.get("/health/live")
    import requests

    head = requests.head(service.url + "/health/live", timeout=5)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == response.headers["Content-Length"]


def test_non_ascii_digits_in_content_length_are_a_400(service):
    answer = raw_exchange(service.service.port, "POST /api/quotes HTTP/1.0\r\nContent-Length: \u00b2\r\n\r\n".encode("latin-1"),
                          timeout=5)
    assert answer.startswith(b"HTTP/1.0 400")


def test_oversized_body_is_413(service):
    response = service.post("/api/quotes", data=b"x" * (65 * 1024))
    assert response.status_code == 413


def test_server_header_does_not_reveal_the_python_version(service):
    assert service.get("/health/live").headers["Server"] == "deploy-demo"


def test_requests_http_server_rejects_get_json_errors_and_a_log_line(service):
    answer = raw_exchange(service.service.port, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", timeout=5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 431")
    assert b"X-Request-ID: " in head
    assert json.loads(body)["error"]
    garbage = raw_exchange(service.service.port, b"GARBAGE\r\n\r\n", timeout=5)  # HTTP/0.9 style: the answer is a bare body
    assert json.loads(garbage)["error"].startswith("Bad request")
    statuses = [line["status"] for line in service.log_lines() if line["msg"] == "request"]
    assert statuses == [431, 400]
    assert all(line["request_id"] for line in service.log_lines() if line["msg"] == "request")


def test_slow_route_exists_outside_production(service):
    response = service.get("/api/slow", params={"ms": "10"})
    assert response.json() == {"slept_ms": 10}
    assert service.get("/api/slow", params={"ms": "999999"}).status_code == 400


def test_slow_route_is_not_served_in_production(start_service):
    running = start_service(APP_ENV="production", APP_SECRET_KEY="k" * 32)
    assert running.get("/api/slow", params={"ms": "10"}).status_code == 404
