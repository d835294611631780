"""CORS for the configured frontend origins; modelled on starlette.middleware.cors, in our envelope."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.web.envelope import error_response, json_response, meta
from service.web.errors import Forbidden
from service.web.schemas import EmptyEnvelope

# Headers a browser may send without asking (the CORS-safelisted request headers), as Starlette has it.
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})

# The API's policy: what its routes accept from a page, and what the page may read back.
API_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
API_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
    "Last-Event-ID",
)
API_EXPOSED = ("ETag", "Location", "X-Request-ID", "Retry-After", "Idempotent-Replayed")
MAX_AGE = 600


class CorsMiddleware:
    """Answers every preflight itself, so none reaches the token check or a route; marks allowed responses readable.

    A preflight from an allowed origin asking for allowed methods and headers gets 200 with the
    policy; any other preflight (CORS off included) 403 in the envelope, without CORS headers, so
    the browser refuses the call; it is never a 401. Other requests pass through, and those from
    an allowed origin are made readable by its page.
    """

    def __init__(
        self,
        app: ASGIApp,
        allow_origins: Sequence[str] = (),
        allow_methods: Sequence[str] = ("GET",),
        allow_headers: Sequence[str] = (),
        expose_headers: Sequence[str] = (),
        allow_credentials: bool = False,
        max_age: int = 600,
    ) -> None:
        self.app = app
        self.allow_origins = frozenset(allow_origins)
        self.allow_methods = frozenset(allow_methods)
        self.allow_headers = SAFELISTED_HEADERS | {h.lower() for h in allow_headers}
        self.allow_credentials = allow_credentials
        self.preflight_headers = {
            "access-control-allow-methods": ", ".join(allow_methods),
            "access-control-allow-headers": ", ".join(sorted(self.allow_headers)),
            "access-control-max-age": str(max_age),
        }
        self.expose_headers = ", ".join(expose_headers)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain def: a request passing through holds no suspended frame here for its whole life
        # (an event stream's, hours); the inner app's awaitable is returned for the caller to await.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        origin = requested_method = requested_headers = None
        for key, value in scope["headers"]:
            if key == b"origin":
                origin = value.decode("latin-1")
            elif key == b"access-control-request-method":
                requested_method = value.decode("latin-1")
            elif key == b"access-control-request-headers":
                requested_headers = value.decode("latin-1")
        if origin is None:
            return self.app(scope, receive, send)
        allowed = origin in self.allow_origins
        if scope["method"] == "OPTIONS" and requested_method is not None:
            preflight = self._preflight(scope, origin, allowed, requested_method, requested_headers)
            return preflight(scope, receive, send)
        if not allowed:
            return self.app(scope, receive, send)

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(self._allow(origin))
                if self.expose_headers:
                    headers["access-control-expose-headers"] = self.expose_headers
                headers.add_vary_header("Origin")
            await send(message)

        return self.app(scope, receive, send_with_cors)

    def _preflight(
        self, scope: Scope, origin: str, allowed: bool, method: str, headers: str | None
    ) -> ASGIApp:
        if not allowed:
            return error_response(scope, Forbidden(f"Origin {origin} is not allowed: add it to CORS_ORIGINS"))
        if method not in self.allow_methods:
            return error_response(scope, Forbidden(f"Method {method} is not allowed from another origin"))
        asked = {h.strip().lower() for h in (headers or "").split(",")} - {""}
        refused = sorted(asked - self.allow_headers)
        if refused:
            return error_response(
                scope, Forbidden(f"Headers not allowed from another origin: {', '.join(refused)}")
            )
        policy = {**self._allow(origin), **self.preflight_headers, "vary": "Origin"}
        return json_response(scope, 200, EmptyEnvelope(None, meta(scope)), policy)

    def _allow(self, origin: str) -> dict[str, str]:
        allow = {"access-control-allow-origin": origin}
        if self.allow_credentials:
            allow["access-control-allow-credentials"] = "true"
        return allow
