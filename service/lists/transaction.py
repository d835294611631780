"""A list write's transaction: the user's row locked first, then the list's row.

The user's row comes before any list or task row in every structural write of a user (the task
side's tree writes too), so those writes run one at a time and what one reads stays true until it
commits: a quota counted, a last position read, a neighbour's key. Every writer taking the user's
row first, no two of them can wait for each other in a cycle: no deadlock to retry.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from sqlalchemy.sql import func, select

from service.db.statements import Query, Runner
from service.lists.columns import OWNED, USER, lists
from service.web.errors import NotFound, PreconditionFailed

T = TypeVar("T")

LIST_NOT_FOUND = "List not found"
LIST_CHANGED = "The list has changed since the given ETag"

LOCK_USER = Query.of(select(func.lock_user(USER)))
# A rename or a move leaves the list's key alone: tasks may still be added to it meanwhile (their
# foreign key takes KEY SHARE). A deletion waits for them, and they for it.
LOCK_LIST = Query.of(select(lists.c.version, lists.c.position).where(*OWNED).with_for_update(key_share=True))
LOCK_LIST_TO_DELETE = Query.of(select(lists.c.version, lists.c.position).where(*OWNED).with_for_update())


class Locked:
    """One write's transaction, the user's row held: runs compiled statements as that user."""

    __slots__ = ("_conn", "_timeout", "user_id")

    def __init__(self, conn: PoolConnectionProxy, timeout: float, user_id: str) -> None:
        self._conn = conn
        self._timeout = timeout
        self.user_id = user_id

    def _args(self, query: Query, values: dict[str, Any]) -> list[Any]:
        return query.args({"user_id": self.user_id, **values})

    async def one(self, query: Query, **values: Any) -> asyncpg.Record | None:
        return await self._conn.fetchrow(query.sql, *self._args(query, values), timeout=self._timeout)

    async def all(self, query: Query, **values: Any) -> list[asyncpg.Record]:
        return await self._conn.fetch(query.sql, *self._args(query, values), timeout=self._timeout)

    async def execute(self, query: Query, **values: Any) -> str:
        return await self._conn.execute(query.sql, *self._args(query, values), timeout=self._timeout)

    async def list_row(
        self, list_id: uuid.UUID, versions: Sequence[int] | None, *, deleting: bool = False
    ) -> asyncpg.Record:
        """Lock the user's list: 404 when it is not theirs, 412 when If-Match names other versions."""
        row = await self.one(LOCK_LIST_TO_DELETE if deleting else LOCK_LIST, list_id=list_id)
        if row is None:
            raise NotFound(LIST_NOT_FOUND)
        if versions is not None and row["version"] not in versions:
            raise PreconditionFailed(LIST_CHANGED)
        return row


async def write(runner: Runner, user_id: str, work: Callable[[Locked], Awaitable[T]]) -> T:
    """Run `work` in one transaction that first locks the user's row (making it on a first write)."""
    async with runner.held(LOCK_USER, user_id) as conn, conn.transaction():
        await conn.fetchval(LOCK_USER.sql, *LOCK_USER.args({"user_id": user_id}), timeout=runner.timeout)
        return await work(Locked(conn, runner.timeout, user_id))
