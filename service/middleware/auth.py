"""The ASGI middleware that verifies the bearer token and puts the caller's identity in the scope."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from service.auth.tokens import TokenVerifier, bad_token
from service.web.envelope import error_response
from service.web.errors import ApiError, Forbidden, Unauthorized

API_PREFIX = "/api/"

_NO_TOKEN = {"www-authenticate": 'Bearer realm="api"'}


def bearer_token(scope: Scope) -> str:
    """The token from the one `Authorization: Bearer` header; raises Unauthorized if there is none."""
    values: list[bytes] = [v for k, v in scope["headers"] if k == b"authorization"]
    if not values:
        raise Unauthorized("Missing bearer token", headers=_NO_TOKEN)
    if len(values) > 1:
        raise bad_token("More than one Authorization header")
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("Authorization must use the Bearer scheme", headers=_NO_TOKEN)
    token = token.strip()
    if not token:
        raise bad_token("Bearer token is empty")
    return token


def path_owner(scope: Scope) -> str:
    """Whose tasks the request is about: the segment after /api/ of the path the router matches.

    The router reads the decoded `path`, so the owner comes from it too (`/%61pi/alice` is alice's).
    A slash sent encoded (`alice%2F..%2Fbob`) would shift the segments between the raw and the
    decoded path: such a path names no one's tasks and is refused.
    """
    raw: bytes | None = scope.get("raw_path")
    if raw is not None and b"%2f" in raw.lower():
        raise Forbidden("The path may not contain an encoded slash")
    return str(scope["path"][len(API_PREFIX) :].partition("/")[0])


class AuthMiddleware:
    """Verifies the bearer token of every /api/ request before routing, then checks the path's owner.

    Preflights get no exemption: the CORS middleware, outside this one, answers those it allows.
    The identity goes into `scope["user"]`, as Starlette's own authentication puts it.
    """

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # CORS preflights never get here: service/middleware/cors.py answers every one of them.
        if scope["type"] == "websocket":
            # The API speaks no WebSocket: refused here, before any route or handler sees it.
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            user = await self.verifier.verify(bearer_token(scope))
            owner = path_owner(scope)
            if owner and owner != user.user_id:
                raise Forbidden()
        except ApiError as exc:
            await error_response(scope, exc)(scope, receive, send)
            return
        # No `scope["auth"]` beside it: nothing reads it, and a 22nd key doubles the scope dict that
        # every idle event stream holds.
        scope["user"] = user
        await self.app(scope, receive, send)
