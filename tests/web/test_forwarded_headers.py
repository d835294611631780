"""Proxies: X-Forwarded-* are trusted from loopback only by default, and never from an untrusted peer."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.settings import Settings
from service.web.http_protocol import uvicorn_options
from tests.support.servers import LiveServer
from tests.support.tokens import SECRET


def _who(request: Request) -> Response:
    assert request.client is not None
    return JSONResponse({"client": request.client.host, "scheme": request.url.scheme})


WHO = Starlette(routes=[Route("/", _who)])


def test_forwarded_headers_are_trusted_from_loopback_only_by_default() -> None:
    settings = Settings.from_env({"BETTER_AUTH_SECRET": SECRET})
    assert settings.forwarded_allow_ips == "127.0.0.1,::1"
    assert uvicorn_options(settings)["forwarded_allow_ips"] == "127.0.0.1,::1"


def test_forwarded_headers_from_an_untrusted_peer_are_ignored() -> None:
    spoof = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    untrusting = Settings(better_auth_secret=SECRET, forwarded_allow_ips="10.0.0.1")
    with LiveServer(untrusting, WHO) as live:
        assert httpx.get(live.base_url, headers=spoof).json() == {"client": "127.0.0.1", "scheme": "http"}
    with LiveServer(Settings(better_auth_secret=SECRET), WHO) as live:
        assert httpx.get(live.base_url, headers=spoof).json() == {"client": "203.0.113.9", "scheme": "https"}
