"""The headers every response carries, added in one place: outermost, so no layer's response escapes it."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Responses are per user: never stored by a shared cache (unless one says otherwise), never MIME-sniffed.
NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")
COMMON_HEADERS = (NOSNIFF, NO_STORE)


def with_common_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` plus nosniff and, unless they set their own cache policy, no-store."""
    names = {name.lower() for name, _ in headers}
    return headers + [header for header in COMMON_HEADERS if header[0] not in names]


class CommonHeadersMiddleware:
    """Appends the common headers to every HTTP response start, whichever layer produced it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain def: a request passing through holds no suspended frame here for its whole life
        # (an event stream's, hours); the inner app's awaitable is returned for the caller to await.
        if scope["type"] != "http":
            return self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_common_headers(list(message.get("headers", ())))
            await send(message)

        return self.app(scope, receive, send_with_headers)
