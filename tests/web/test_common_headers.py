"""service/web/common_headers.py: every response, of every kind, is never sniffed nor stored; the docs
bundle keeps its own cache policy."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.app import create_app
from tests.support.postgres import Database
from tests.support.servers import LiveServer, settings_for
from tests.support.tokens import auth, new_user

METRICS_TOKEN = "metrics-token-0123456789-Vq7hZ2kX"
BUNDLE = "/docs/assets/javascripts/swagger-ui-bundle.js"


def _boom(request: Request) -> Response:
    raise RuntimeError("an unexpected failure")


@pytest.fixture(scope="module")
def exposed(database: Database) -> Iterator[LiveServer]:
    """The real app with metrics on and one route that fails, so a 500 can be seen."""
    settings = settings_for(
        database.url, metrics_enabled=True, metrics_token=METRICS_TOKEN, max_inflight_per_user=1
    )
    app = create_app(settings)
    app.router.routes.append(Route("/boom", _boom))
    with LiveServer(settings, app) as live:
        yield live


def _every_kind_of_response(live: LiveServer) -> dict[str, httpx.Response]:
    user = new_user()
    with live.client() as client:
        created = client.post(f"/api/{user}/tasks", json={"title": "x"}, headers=auth(user))
        task_url = f"/api/{user}/tasks/{created.json()['data']['id']}"
        bundle = client.get(BUNDLE)
        return {
            "201": created,
            "health": client.get("/healthz"),
            "ready": client.get("/readyz"),
            "404 route": client.get("/nowhere"),
            "401": client.get(f"/api/{user}/tasks"),
            "405": client.post("/healthz"),
            "trailing slash": client.get("/docs/"),
            "304 task": client.get(
                task_url, headers={**auth(user), "If-None-Match": created.headers["etag"]}
            ),
            "docs": client.get("/docs"),
            "docs script": client.get("/docs/init.js"),
            "openapi": client.get("/openapi.json"),
            "304 asset": client.get(BUNDLE, headers={"If-None-Match": bundle.headers["etag"]}),
            "metrics": client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}),
            "metrics 401": client.get("/metrics"),
            "preflight": client.options(
                "/api/x/tasks",
                headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"},
            ),
            "414": client.get("/healthz", params={"q": "x" * 9000}),
            "431": client.get("/healthz", headers={f"X-Pad-{i}": "p" * 1000 for i in range(40)}),
            # Last: uvicorn closes the connection after an exception.
            "500": client.get("/boom"),
        }


def test_every_response_is_never_sniffed_nor_stored(exposed: LiveServer) -> None:
    responses = _every_kind_of_response(exposed)
    assert responses["500"].status_code == 500
    assert responses["304 task"].status_code == responses["304 asset"].status_code == 304
    for name, response in responses.items():
        assert response.headers.get_list("x-content-type-options") == ["nosniff"], name
        # The docs bundle sets its own policy (below); everything else is never stored.
        expected = ["no-cache"] if name == "304 asset" else ["no-store"]
        assert response.headers.get_list("cache-control") == expected, name


def test_the_docs_assets_keep_their_own_cache_policy(client: httpx.Client) -> None:
    # The bundle is large and the same for everyone: a browser may keep it, revalidating by ETag.
    bundle = client.get(BUNDLE)
    assert bundle.headers.get_list("cache-control") == ["no-cache"]
    assert bundle.headers["x-content-type-options"] == "nosniff"
    assert client.get(BUNDLE, headers={"If-None-Match": bundle.headers["etag"]}).status_code == 304


def test_an_overloaded_users_429_carries_the_headers_too(exposed: LiveServer) -> None:
    user = new_user()
    host, _, port = exposed.base_url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=10) as held:
        held.sendall(
            b"POST /api/%s/tasks HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            % (user.encode(), auth(user)["Authorization"].encode())
        )
        assert held.recv(1024).startswith(b"HTTP/1.1 100")
        refused = httpx.get(f"{exposed.base_url}/api/{user}/tasks", headers=auth(user))
    assert refused.status_code == 429
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert refused.headers["cache-control"] == "no-store"
