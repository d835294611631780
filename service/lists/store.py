"""List CRUD: each write one transaction behind the user's row (transaction.py), its statements compiled once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import asyncpg
from msgspec import Struct
from sqlalchemy import Text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql import delete, func, select, update

from service.db.statements import Query, Runner, param
from service.lists import order
from service.lists.columns import BUMP, OWNED, RETURNED, USER, StoredList, lists
from service.lists.schemas import ListCreate, ListRead
from service.lists.transaction import Locked, write
from service.tasks.columns import tasks, utc_now
from service.tasks.order import positions
from service.tasks.tree.writes import deleting
from service.web.errors import QuotaExceeded

DEFAULT_MAX_LISTS = 500

ALL = Query.of(select(*RETURNED).where(lists.c.user_id == USER).order_by(lists.c.position))
GET = Query.of(select(*RETURNED).where(*OWNED))
# Read under the user's lock, so the count is exact and the last key still last when it is written.
TALLY = Query.of(
    select(func.count().label("lists"), func.max(lists.c.position).label("last")).where(
        lists.c.user_id == USER
    )
)
CREATE = Query.of(
    insert(lists)
    .values(
        user_id=USER,
        id=param("list_id", lists.c.id.type),
        name=param("name", Text),
        position=param("position", Text),
        created_at=param("now", lists.c.created_at.type),
        updated_at=param("now", lists.c.created_at.type),
    )
    .returning(*RETURNED)
)
RENAME = Query.of(update(lists).where(*OWNED).values(name=param("name", Text), **BUMP).returning(*RETURNED))
# The list's tasks go first, in a statement of their own: the feed numbers their tombstones before
# the list's. The count goes down by exactly the rows deleted, as clear-completed's does.
_, _emptied_count, _uncount = deleting(tasks.c.list_id == param("list_id", tasks.c.list_id.type))
EMPTY = Query.of(select(_emptied_count.label("deleted")).add_cte(_uncount))
DELETE = Query.of(delete(lists).where(*OWNED).returning(*RETURNED))


class Deleted(Struct, frozen=True):
    """A deleted list as it was, and how many tasks went with it."""

    stored: StoredList
    tasks: int


def _stored(row: asyncpg.Record | None) -> StoredList:
    if row is None:  # the list is locked by this transaction: it cannot be gone
        raise RuntimeError("the locked list was not written")
    return StoredList.from_row(row)


class ListStore:
    """Runs the list statements on the shared runner; every method takes the owner's id."""

    def __init__(self, runner: Runner, max_lists: int = DEFAULT_MAX_LISTS) -> None:
        self.runner = runner
        self._max_lists = max_lists

    async def all(self, user_id: str) -> list[ListRead]:
        """Every list of the user, in their order (a few hundred at most: MAX_LISTS_PER_USER)."""
        return [StoredList.from_row(row).task_list for row in await self.runner.all(ALL, user_id=user_id)]

    async def get(self, user_id: str, list_id: uuid.UUID) -> StoredList | None:
        row = await self.runner.one(GET, user_id=user_id, list_id=list_id)
        return None if row is None else StoredList.from_row(row)

    async def create(self, user_id: str, list_id: uuid.UUID, now: datetime, body: ListCreate) -> StoredList:
        """Insert the list last in the user's order; 409 QUOTA_EXCEEDED at MAX_LISTS_PER_USER."""

        async def work(tx: Locked) -> StoredList:
            tally = await tx.one(TALLY)
            if tally is None:  # an aggregate without GROUP BY returns its one row
                raise RuntimeError("the list tally returned no row")
            if tally["lists"] >= self._max_lists:
                raise QuotaExceeded(f"You already hold the most lists allowed: {self._max_lists:,}")
            position = positions.key_between(tally["last"], None)
            row = await tx.one(CREATE, list_id=list_id, name=body.name, position=position, now=now)
            return _stored(row)

        return await write(self.runner, user_id, work)

    async def update(
        self, user_id: str, list_id: uuid.UUID, versions: Sequence[int] | None, name: str
    ) -> StoredList:
        """Rename the list (a new version even when the name is the same); 404 or 412 as If-Match says."""

        async def work(tx: Locked) -> StoredList:
            await tx.list_row(list_id, versions)
            return _stored(await tx.one(RENAME, list_id=list_id, name=name, now=utc_now()))

        return await write(self.runner, user_id, work)

    async def delete(self, user_id: str, list_id: uuid.UUID, versions: Sequence[int] | None) -> Deleted:
        """Delete the list and every task in it, in one transaction."""

        async def work(tx: Locked) -> Deleted:
            await tx.list_row(list_id, versions, deleting=True)
            emptied = await tx.one(EMPTY, list_id=list_id)
            if emptied is None:  # likewise
                raise RuntimeError("emptying the list returned no row")
            return Deleted(_stored(await tx.one(DELETE, list_id=list_id)), int(emptied["deleted"]))

        return await write(self.runner, user_id, work)

    async def move(
        self,
        user_id: str,
        list_id: uuid.UUID,
        versions: Sequence[int] | None,
        anchor_id: uuid.UUID,
        after: bool,
    ) -> StoredList:
        """Put the list right after (or before) another of the user's lists."""
        return await write(
            self.runner, user_id, lambda tx: order.move(tx, list_id, versions, anchor_id, after)
        )
