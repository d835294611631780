"""Whether the database holds every migration in `sql/`; API calls wait for it instead of failing with 500s.

Checked once at start and, while migrations are pending (or the database is unreachable), again
by the requests that need it; once the schema is complete it is never queried again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence

import asyncpg
from starlette.types import ASGIApp, Receive, Scope, Send

from service.db.pool import UNAVAILABLE_ERRORS
from service.web.envelope import error_response
from service.web.errors import ServiceUnavailable, unavailable

logger = logging.getLogger("service")

MIGRATE_COMMAND = "python -m service migrate"
CHECK_TIMEOUT = 2.0
# An operator has to act: polling clients need not come back every few seconds.
PENDING_RETRY_AFTER = "30"


class SchemaState:
    """The migrations this code expects, and which of them the database still lacks."""

    def __init__(self, pool: asyncpg.Pool, expected: Sequence[str]) -> None:
        self._pool = pool
        self._expected = tuple(expected)
        self._pending: tuple[str, ...] | None = None  # None: not known yet
        self._checking: asyncio.Task[tuple[str, ...]] | None = None
        self._reported = False

    @property
    def complete(self) -> bool:
        return self._pending == ()

    async def pending(self) -> tuple[str, ...]:
        """Migrations not applied yet; asks the database only until it has them all.

        Concurrent callers share one query. Raises an UNAVAILABLE_ERRORS exception while the
        database cannot be reached.
        """
        if self._pending == ():
            return ()
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._query())
        checking = self._checking
        try:
            return await asyncio.shield(checking)
        finally:
            if self._checking is checking and checking.done():
                self._checking = None

    async def _query(self) -> tuple[str, ...]:
        async with self._pool.acquire(timeout=CHECK_TIMEOUT) as conn:
            try:
                rows = await conn.fetch("SELECT name FROM schema_migrations", timeout=CHECK_TIMEOUT)
            except asyncpg.UndefinedTableError:
                rows = []  # an empty database: nothing was ever migrated
        applied = {row["name"] for row in rows}
        pending = tuple(name for name in self._expected if name not in applied)
        self._pending = pending
        if pending and not self._reported:
            self._reported = True
            logger.error("%s", describe(pending))
        elif not pending and self._reported:
            logger.info("database migrated: serving the API")
        return pending

    async def check_at_start(self) -> None:
        """One look at start, so the log says at once when the database needs migrating."""
        try:
            await self.pending()
        except UNAVAILABLE_ERRORS:
            logger.warning("database unreachable at start: its migrations will be checked when it answers")


def describe(pending: Sequence[str]) -> str:
    """What an operator reads: how many migrations are missing, which, and the command that applies them."""
    return (
        f"the database lacks {len(pending)} migration(s) ({', '.join(pending)}): "
        f"run `{MIGRATE_COMMAND}` with this DATABASE_URL"
    )


def not_migrated(pending: Sequence[str]) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"The database is not migrated yet; the operator must run `{MIGRATE_COMMAND}`"
        f" ({len(pending)} migration(s) pending)",
        headers={"retry-after": PENDING_RETRY_AFTER},
    )


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
