"""CORS for the configured frontend origins; modelled on starlette.middleware.cors, in our envelope."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .envelope import error_response, json_response, meta
from .errors import Forbidden
from .schemas import EmptyEnvelope

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = "Authorization, Content-Type, If-Match, If-None-Match, Idempotency-Key, X-Request-ID"
EXPOSED_HEADERS = "ETag, Location, X-Request-ID, Retry-After, Idempotent-Replayed"
PREFLIGHT_MAX_AGE = "600"


class CorsMiddleware:
    """Answers preflights without a token, and marks responses to allowed origins as readable.

    A request from any other origin gets no CORS header at all, so the browser keeps the
    response from the page; its preflight is refused with 403 in the envelope (never a 401).
    """

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = None
        preflight = False
        for key, value in scope["headers"]:
            if key == b"origin":
                origin = value.decode("latin-1")
            elif key == b"access-control-request-method":
                preflight = scope["method"] == "OPTIONS"
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = origin in self.origins
        if preflight:
            if allowed:
                headers = {
                    **_allow(origin),
                    "access-control-allow-methods": ALLOWED_METHODS,
                    "access-control-allow-headers": ALLOWED_HEADERS,
                    "access-control-max-age": PREFLIGHT_MAX_AGE,
                }
                response = json_response(scope, 200, EmptyEnvelope(None, meta(scope)), headers)
            else:
                response = error_response(scope, Forbidden(f"Origin {origin} is not allowed"))
            await response(scope, receive, send)
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(_allow(origin))
                headers["access-control-expose-headers"] = EXPOSED_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _allow(origin: str) -> dict[str, str]:
    return {
        "access-control-allow-origin": origin,
        "access-control-allow-credentials": "true",
        "vary": "Origin",
    }
