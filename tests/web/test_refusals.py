"""What a security review of the running service found open, each closed: the in-flight cap's one
exemption, metrics open to anyone, WebSocket upgrades, immortal tokens, credentialed CORS, the
server banner, and JSON behind a byte order mark."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest

from service.app import create_app
from service.settings import ConfigError, Settings
from tests.support import (
    SECRET,
    Database,
    LiveServer,
    UserClient,
    assert_error,
    auth,
    make_token,
    new_user,
    settings_for,
)
from tests.support.raw_http import connect, read_until_closed


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_only_the_event_stream_is_exempt_from_the_in_flight_cap(
    make_server: Callable[..., LiveServer],
) -> None:
    """A slow PUT on .../tasks/events ends in /events too, but is an ordinary request: it counts."""
    live = make_server(max_inflight_per_user=1)
    user = new_user()
    with connect(live) as held, live.client(timeout=10) as client:
        held.sendall(
            f"PUT /api/{user}/tasks/events HTTP/1.1\r\nHost: t\r\nAuthorization: {auth(user)['Authorization']}\r\n"
            "Content-Type: application/json\r\nContent-Length: 16\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        assert held.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        refused = client.get(f"/api/{user}/tasks", headers=auth(user))
        assert_error(refused, 429, "TOO_MANY_REQUESTS")


@pytest.mark.parametrize("host", ["0.0.0.0", "10.0.0.5", "::"])
def test_metrics_without_a_token_on_a_reachable_host_is_refused_at_start(host: str) -> None:
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        Settings(better_auth_secret=SECRET, host=host, metrics_enabled=True)


def test_metrics_without_a_token_stay_allowed_on_loopback() -> None:
    assert Settings(better_auth_secret=SECRET, host="127.0.0.1", metrics_enabled=True).metrics_enabled


def test_a_websocket_upgrade_is_not_taken(server: LiveServer) -> None:
    user = new_user()
    with connect(server) as sock:
        sock.sendall(
            f"GET /api/{user}/tasks HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Authorization: {auth(user)['Authorization']}\r\nConnection: close\r\n\r\n".encode()
        )
        raw = read_until_closed(sock)
    assert not raw.startswith(b"HTTP/1.1 101")


def test_a_websocket_scope_is_closed_before_any_route(database: Database) -> None:
    app = create_app(settings_for(database.url))
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/api/someone/events", "headers": [], "query_string": b""}
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_a_token_living_for_ever_is_refused_by_default(me: UserClient) -> None:
    immortal = make_token(me.id, ttl=10**18)
    response = me.client.get(me.tasks_url, headers={"Authorization": f"Bearer {immortal}"})
    assert_error(response, 401, "UNAUTHORIZED")
    assert "longer than" in response.json()["error"]["message"]


def test_preflights_do_not_allow_credentials(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(cors_origins=("https://app.example.com",))
    with live.client() as client:
        response = client.options(
            "/api/u/tasks",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
    assert response.status_code == 200
    assert "access-control-allow-credentials" not in response.headers


def test_no_server_banner(server: LiveServer) -> None:
    with server.client() as client:
        assert "server" not in client.get("/healthz").headers


@pytest.mark.parametrize("where", ["header", "payload"])
def test_json_behind_a_byte_order_mark_is_not_a_token(me: UserClient, where: str) -> None:
    now = int(time.time())
    header = json.dumps({"alg": "HS256"}).encode()
    payload = json.dumps({"sub": me.id, "iat": now, "exp": now + 600}).encode()
    if where == "header":
        header = b"\xef\xbb\xbf" + header
    else:
        payload = b"\xef\xbb\xbf" + payload
    signing_input = f"{_b64(header)}.{_b64(payload)}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(signature)}"
    response = me.client.get(me.tasks_url, headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "UNAUTHORIZED")
