"""Refuses oversized URLs and header sets before anything else reads them."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from .envelope import error_response
from .errors import HeadersTooLarge, UriTooLong

MAX_URL_BYTES = 8192
MAX_HEADER_BYTES = 32768


class LimitsMiddleware:
    """414 for a URL over 8 KiB, 431 for headers over 32 KiB; bodies are limited where they are read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            error = None
            if len(scope.get("raw_path") or b"") + len(scope["query_string"]) > MAX_URL_BYTES:
                error = UriTooLong()
            elif sum(len(k) + len(v) + 4 for k, v in scope["headers"]) > MAX_HEADER_BYTES:
                error = HeadersTooLarge()
            if error is not None:
                await error_response(scope, error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
