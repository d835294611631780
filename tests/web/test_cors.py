"""service/middleware/cors.py: preflights from the frontend's origin need no token; other origins and
requests beyond the policy get no CORS headers; responses expose what a frontend reads."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.middleware.cors import CorsMiddleware
from tests.support.clients import preflight
from tests.support.servers import LiveServer, settings_for
from tests.support.tokens import auth, new_user

APP = "https://app.example.com"


@pytest.fixture
def cors_server(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server(cors_origins=(APP, "http://localhost:3000"))


def test_preflight_from_the_frontend_needs_no_token(cors_server: LiveServer) -> None:
    with cors_server.client() as client:
        response = preflight(client, APP, "/api/u1/tasks/00000000-0000-7000-8000-000000000000")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert "access-control-allow-credentials" not in response.headers
    assert "PATCH" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "if-match", "idempotency-key"):
        assert header in allowed
    assert response.json()["meta"]["request_id"] == response.headers["x-request-id"]


def test_preflight_from_another_origin_gets_no_cors_headers_and_no_401(cors_server: LiveServer) -> None:
    with cors_server.client() as client:
        response = preflight(client, "https://evil.example", "/api/u1/tasks")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert not [h for h in response.headers if h.startswith("access-control-")]


def test_preflight_without_cors_configured_is_refused_never_401(client: httpx.Client) -> None:
    response = preflight(client, APP, "/api/u1/tasks")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert not [h for h in response.headers if h.startswith("access-control-")]


def test_an_options_request_that_is_no_preflight_needs_a_token(cors_server: LiveServer) -> None:
    # Without an Origin it is not CORS at all: nothing skips the token check for it.
    with cors_server.client() as client:
        response = client.options("/api/u1/tasks", headers={"Access-Control-Request-Method": "GET"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("method", "headers"),
    [("PURGE", "authorization"), ("TRACE", ""), ("PATCH", "authorization, x-smuggled"), ("GET", "cookie")],
)
def test_preflight_asking_for_more_than_the_policy_is_refused(
    cors_server: LiveServer, method: str, headers: str
) -> None:
    with cors_server.client() as client:
        response = client.options(
            "/api/u1/tasks",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": headers,
            },
        )
    assert response.status_code == 403
    assert not [h for h in response.headers if h.startswith("access-control-")]


def test_preflight_may_ask_for_safelisted_headers(cors_server: LiveServer) -> None:
    with cors_server.client() as client:
        response = client.options(
            "/api/u1/tasks",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "Accept, Idempotency-Key,X-Request-ID",
            },
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["vary"] == "Origin"


def test_cors_appends_to_vary_instead_of_replacing_it() -> None:
    def negotiated(request: Request) -> Response:
        return Response("x", headers={"Vary": "Accept-Encoding"})

    app = Starlette(
        routes=[Route("/", negotiated)],
        middleware=[Middleware(CorsMiddleware, allow_origins=[APP], allow_methods=["GET"])],
    )
    with LiveServer(settings_for("postgresql://unused/db"), app) as live, live.client() as client:
        response = client.get("/", headers={"Origin": APP})
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["vary"] == "Accept-Encoding, Origin"


def test_responses_to_the_frontend_expose_headers(cors_server: LiveServer) -> None:
    user = new_user()
    with cors_server.client() as client:
        created = client.post(
            f"/api/{user}/tasks", json={"title": "x"}, headers={**auth(user), "Origin": APP}
        )
        other = client.get(f"/api/{user}/tasks", headers={**auth(user), "Origin": "https://evil.example"})
        denied = client.get(f"/api/{user}/tasks", headers={"Origin": APP})
    assert created.headers["access-control-allow-origin"] == APP
    exposed = created.headers["access-control-expose-headers"]
    for header in ("ETag", "Location", "X-Request-ID"):
        assert header in exposed
    assert "access-control-allow-origin" not in other.headers
    # Errors are readable by the frontend too, so it can show why.
    assert denied.status_code == 401
    assert denied.headers["access-control-allow-origin"] == APP
