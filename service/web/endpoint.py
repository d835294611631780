"""The base of every class-based route: Starlette's HTTPEndpoint, with its allowed methods found once."""

from __future__ import annotations

from typing import Any, ClassVar

from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Receive, Scope, Send


class Endpoint(HTTPEndpoint):
    """HTTPEndpoint with its allowed methods found once per class, not again on every request."""

    _methods: ClassVar[list[str]]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        # Starlette's order, for the same Allow header; HEAD is answered by `get`.
        candidates = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        cls._methods = [m for m in candidates if hasattr(cls, "get" if m == "HEAD" else m.lower())]

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope, self.receive, self.send = scope, receive, send

    async def dispatch(self) -> None:
        request: Request[Any] = Request(self.scope, receive=self.receive)
        method = request.method
        if method not in self._methods:
            raise HTTPException(405, headers={"Allow": ", ".join(self._methods)})
        handler = getattr(self, "get" if method == "HEAD" else method.lower())
        response = await handler(request)
        await response(self.scope, self.receive, self.send)
