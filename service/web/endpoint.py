"""The base of every class-based route: Starlette's HTTPEndpoint, with its allowed methods found once."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from service.web.errors import NotFound


def caller(request: Request[Any]) -> str:
    """The verified caller's id: the auth middleware put it in the scope (and the path names them)."""
    user_id: str = request.scope["user"].user_id
    return user_id


def path_id(request: Request[Any], name: str, not_found: str) -> uuid.UUID:
    """A path's resource id; anything but a UUID cannot name one, so it is a 404 like any other."""
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise NotFound(not_found) from None


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
