"""Answers `/api/` calls 503 while migrations are pending, rather than letting their SQL fail with 500s."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send

from service.db.pool import UNAVAILABLE_ERRORS
from service.db.schema_state import SchemaState, not_migrated
from service.web.envelope import error_response
from service.web.errors import unavailable


class MigrationGuard:
    """Answers `/api/` calls 503 while migrations are pending, rather than letting their SQL fail."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain def: a request passing through holds no suspended frame here for its whole life
        # (an event stream's, hours); the inner app's awaitable is returned for the caller to await.
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            state: SchemaState = scope["state"]["schema"]
            if not state.complete:
                return self._unless_pending(state, scope, receive, send)
        return self.app(scope, receive, send)

    async def _unless_pending(self, state: SchemaState, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            pending = await state.pending()
        except UNAVAILABLE_ERRORS:
            await error_response(scope, unavailable())(scope, receive, send)
            return
        if pending:
            await error_response(scope, not_migrated(pending))(scope, receive, send)
            return
        await self.app(scope, receive, send)
