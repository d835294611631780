"""Whether the database holds every migration in `sql/`; API calls wait for it instead of failing with 500s.

Checked once at start and, while migrations are pending (or the database is unreachable), again
by the requests that need it; once the schema is complete it is never queried again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from service.db.pool import UNAVAILABLE_ERRORS
from service.web.errors import RETRY_MIGRATING, ServiceUnavailable

logger = logging.getLogger("service")

MIGRATE_COMMAND = "python -m service migrate"
CHECK_TIMEOUT = 2.0


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
        headers={"retry-after": RETRY_MIGRATING},
    )
