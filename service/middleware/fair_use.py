"""Fair use of a worker: one user's requests in flight are capped, so they cannot take every pool slot."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send

from service.web.envelope import error_response
from service.web.errors import RETRY_BUSY, TooManyRequests

# An event stream is in flight for hours by design; MAX_STREAMS_PER_USER caps those instead.
# Only the stream itself is exempt: /api/{user_id}/events, nothing else that ends in /events.
EVENT_STREAM_SUFFIX = "/events"


class FairUseMiddleware:
    """429 for a user's request beyond `limit` of theirs in flight at this worker; runs after the token check.

    A request counts from the moment it passes here until the app returns, whether it answered,
    raised or lost its client: the count drops in a `finally`.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight: dict[str, int] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain def: a request passing through holds no suspended frame here for its whole life
        # (an event stream's, hours); the inner app's awaitable is returned for the caller to await.
        user = scope.get("user") if scope["type"] == "http" else None
        if user is None:
            return self.app(scope, receive, send)
        path = scope["path"]
        if path.endswith(EVENT_STREAM_SUFFIX) and path == f"/api/{user.user_id}/events":
            return self.app(scope, receive, send)
        return self._counted(user.user_id, scope, receive, send)

    async def _counted(self, user_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        count = self.in_flight.get(user_id, 0)
        if count >= self.limit:
            error = TooManyRequests(
                f"More than {self.limit} of your requests are in progress; try again shortly",
                headers={"retry-after": RETRY_BUSY},
            )
            await error_response(scope, error)(scope, receive, send)
            return
        self.in_flight[user_id] = count + 1
        try:
            await self.app(scope, receive, send)
        finally:
            remaining = self.in_flight[user_id] - 1
            if remaining:
                self.in_flight[user_id] = remaining
            else:
                del self.in_flight[user_id]
