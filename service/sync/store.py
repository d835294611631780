"""The changes feed's statements: what changed in one user's tasks past a change number, in order.

Triggers (sql/004_changes.sql) number every write with the user's next change number, taken
under the user row's lock, so one user's numbers follow commit order; a deleted task leaves a
tombstone with its own number. A page is every row of either kind past a number, in number
order, read with the user's latest number from the same snapshot: everything up to that number
is visible in it, so a client that continues from there never skips a change.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import BigInteger, Integer, Interval, cast, func, null, true, union_all
from sqlalchemy.sql import ColumnElement, delete, select, update
from sqlalchemy.sql.expression import literal_column

from service.db.statements import Query, Runner, param, table
from service.lists.columns import LIST_READ_COLUMNS, lists
from service.lists.schemas import ListRead
from service.sync.schemas import Change, Deletion, ListDeletion, ListUpsert, Upsert
from service.tasks.columns import READ_COLUMNS, USER, tasks, users
from service.tasks.models import TaskTombstone
from service.tasks.schemas import TaskRead

tombstones = table(TaskTombstone)

_SINCE = param("since", BigInteger)
# Lists (and their deletions) past this number: the `since` of a list, which a full sync may have
# sent beyond the tasks' `since`.
_LISTS_SINCE = param("lists_since", BigInteger)
_LIMIT = param("limit", Integer)
_TASK: ColumnElement[bool] = literal_column("false")
_LIST: ColumnElement[bool] = literal_column("true")
# One row shape for the four kinds of change: what it is, its number, its deletion time (null
# for an upsert), then a task's columns and a list's (each null for the other kind; a deletion
# has only its id, in the task's id column).
_LIST_LABELS = tuple(c.label(f"listed_{c.name}") for c in LIST_READ_COLUMNS)
# Typed nulls: each branch of the union must agree on every column's type.
_NO_TASK = tuple(cast(null(), c.type).label(c.name) for c in READ_COLUMNS)
_NO_LIST = tuple(cast(null(), c.type).label(f"listed_{c.name}") for c in LIST_READ_COLUMNS)
_NOT_DELETED = cast(null(), tombstones.c.deleted_at.type)


def _rows(
    part: int, is_list: Any, seq: Any, deleted_at: Any, task: tuple[Any, ...], task_list: tuple[Any, ...]
) -> tuple[Any, ...]:
    return (
        literal_column(str(part)).label("part"),
        is_list.label("is_list"),
        seq.label("seq"),
        deleted_at.label("deleted_at"),
        *task,
        *task_list,
    )


def _task_upserts(part: int, *conditions: Any) -> Any:
    return select(*_rows(part, _TASK, tasks.c.change_seq, _NOT_DELETED, READ_COLUMNS, _NO_LIST)).where(
        tasks.c.user_id == USER, *conditions
    )


def _list_upserts(part: int) -> Any:
    return select(*_rows(part, _LIST, lists.c.change_seq, _NOT_DELETED, _NO_TASK, _LIST_LABELS)).where(
        lists.c.user_id == USER, lists.c.change_seq > _LISTS_SINCE
    )


def _deletions(part: int, *conditions: Any) -> Any:
    """Tombstones past `since`; the id sits in the task's id column, whichever kind it is."""
    task = tuple(
        tombstones.c.id if c.name == "id" else cast(null(), c.type).label(c.name) for c in READ_COLUMNS
    )
    return select(
        *_rows(part, tombstones.c.is_list, tombstones.c.change_seq, tombstones.c.deleted_at, task, _NO_LIST)
    ).where(tombstones.c.user_id == USER, *conditions)


# The page's columns before the change's own: the clock, the user's latest number, and the horizon
# of the tombstones forgotten by number.
_BEFORE_CHANGE = 3
# The database's clock, so token times and tombstone times come from one clock; one row always.
_clock = select(func.statement_timestamp().label("read_at")).subquery("clock")


def _with_head(page: Any) -> Query:
    """A page with the user's latest change number beside it (null when they never wrote)."""
    return Query.of(
        select(_clock.c.read_at, users.c.change_seq.label("head_seq"), users.c.tombstone_horizon, page)
        .select_from(_clock.outerjoin(users, users.c.id == USER).outerjoin(page, true()))
        .order_by(page.c.part, page.c.seq)
    )


# Every change past a number, in number order: a list's tasks' deletions come before its own, and
# a list is numbered before any task that names it.
CHANGES_SINCE = _with_head(
    union_all(
        _task_upserts(0, tasks.c.change_seq > _SINCE),
        _list_upserts(0),
        _deletions(0, ~tombstones.c.is_list, tombstones.c.change_seq > _SINCE),
        _deletions(0, tombstones.c.is_list, tombstones.c.change_seq > _LISTS_SINCE),
    )
    .order_by(literal_column("seq"))
    .limit(_LIMIT)
    .subquery("page")
)
# A full sync sends every list (and, past the first page, every list's deletion since), then every
# task: the client starts from nothing, so it needs no task's deletion.
_lists_first = (
    union_all(
        _list_upserts(0),
        # A first page (since 0) has no deletions to tell: the client holds nothing yet.
        _deletions(0, tombstones.c.is_list, tombstones.c.change_seq > _LISTS_SINCE, _LISTS_SINCE > 0),
    )
    .order_by(literal_column("seq"))
    .limit(_LIMIT)
    .subquery("listed")
)
_tasks_after = _task_upserts(1).order_by(tasks.c.change_seq).limit(_LIMIT).subquery("tasks_after")
CHANGES_ALL = _with_head(
    union_all(select(_lists_first), select(_tasks_after))
    .order_by(literal_column("part"), literal_column("seq"))
    .limit(_LIMIT)
    .subquery("page")
)
HEAD = Query.of(
    select(_clock.c.read_at, users.c.change_seq.label("head_seq")).select_from(
        _clock.outerjoin(users, users.c.id == USER)
    )
)
# Maintenance across all users: it only forgets tombstones past the retention.
PURGE_TOMBSTONES = Query.of(
    delete(tombstones).where(tombstones.c.deleted_at < func.now() - param("keep", Interval))
)


# Maintenance across all users: each user keeps their newest `most` tombstones; the highest number
# forgotten becomes their horizon, in the same statement, so no token slips between the two.
_ranked = select(
    tombstones.c.user_id,
    tombstones.c.change_seq,
    func.row_number()
    .over(partition_by=tombstones.c.user_id, order_by=tombstones.c.change_seq.desc())
    .label("rank"),
).cte("ranked")
_forgotten = (
    delete(tombstones)
    .where(
        tombstones.c.user_id == _ranked.c.user_id,
        tombstones.c.change_seq == _ranked.c.change_seq,
        _ranked.c.rank > param("most", Integer),
    )
    .returning(tombstones.c.user_id, tombstones.c.change_seq)
    .cte("forgotten")
)
_tops = (
    select(_forgotten.c.user_id, func.max(_forgotten.c.change_seq).label("top"))
    .group_by(_forgotten.c.user_id)
    .subquery("tops")
)
_raised = (
    update(users)
    .where(users.c.id == _tops.c.user_id, users.c.tombstone_horizon < _tops.c.top)
    .values(tombstone_horizon=_tops.c.top)
    .returning(users.c.id)
    .cte("raised")
)
BOUND_TOMBSTONES = Query.of(
    select(select(func.count()).select_from(_forgotten).scalar_subquery().label("forgotten")).add_cte(_raised)
)


class ChangePage(msgspec.Struct, frozen=True):
    """Changes in number order (`seqs[i]` numbers `changes[i]`), and the user's latest number in the
    same snapshot, read then."""

    changes: list[Change]
    seqs: list[int]
    # Whether each change is a list's (in a full sync, lists come before every task).
    of_lists: list[bool]
    head: int
    # A `since` below this may have missed a deletion whose tombstone was forgotten.
    horizon: int
    read_at: datetime


_TASK_AT = _BEFORE_CHANGE + 4
_LIST_AT = _TASK_AT + len(READ_COLUMNS)


def _change(row: asyncpg.Record) -> Change:
    if row["deleted_at"] is not None:
        return (ListDeletion if row["is_list"] else Deletion)(row["id"], row["deleted_at"])
    if row["is_list"]:
        return ListUpsert(ListRead(*row[_LIST_AT:]))
    return Upsert(TaskRead(*row[_TASK_AT:_LIST_AT]))


class ChangeStore:
    """The feed's statements, run on the shared runner; every one names its user."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def changes(
        self, user_id: str, since: int, lists_since: int, limit: int, *, full: bool
    ) -> ChangePage:
        """Up to `limit` changes: tasks' after `since`, lists' after `lists_since`, oldest first.

        `full`: the lists past `lists_since`, then every task.
        """
        query = CHANGES_ALL if full else CHANGES_SINCE
        rows = await self._runner.all(
            query, user_id=user_id, since=since, lists_since=lists_since, limit=limit
        )
        first = rows[0]
        rows = [row for row in rows if row["seq"] is not None]
        return ChangePage(
            [_change(row) for row in rows],
            [row["seq"] for row in rows],
            [row["is_list"] for row in rows],
            first["head_seq"] or 0,
            first["tombstone_horizon"] or 0,
            first["read_at"],
        )

    async def head(self, user_id: str) -> tuple[int, datetime]:
        """The user's latest change number (0 before their first write), and the database's time."""
        row = await self._runner.one(HEAD, user_id=user_id)
        assert row is not None
        return row["head_seq"] or 0, row["read_at"]

    async def purge_tombstones(self, keep: timedelta, most: int) -> int:
        """Forget tombstones older than `keep`, then each user's beyond their newest `most`."""
        forgotten = await self._runner.count(PURGE_TOMBSTONES, keep=keep)
        row = await self._runner.one(BOUND_TOMBSTONES, most=most)
        assert row is not None  # a SELECT without FROM returns its one row
        return forgotten + int(row["forgotten"])
