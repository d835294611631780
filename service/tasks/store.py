"""Task CRUD, stats and clear-completed: each one statement, compiled once, naming its user.

The listing (listing/), the manual order (order/) and Idempotency-Key claims (idempotency.py)
keep their own SQL; `TaskStore` is the one door the routes go through to all of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from msgspec import UNSET
from sqlalchemy import Boolean, Integer, SmallInteger, Text, case, cast, func
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by, insert
from sqlalchemy.sql import ColumnElement, delete, select, update
from sqlalchemy.sql.expression import literal_column

from service.db.statements import Query, Runner, param
from service.tasks.columns import (
    BUMP,
    MATCHES,
    OWNED,
    RETURNED,
    USER,
    StoredTask,
    bind_fields,
    int_key,
    keys,
    tag_counts,
    tasks,
    users,
    utc_now,
)
from service.tasks.fields import STATS_TAGS_MAX, tag_keys
from service.tasks.listing import query as listing
from service.tasks.schemas import ListQuery, TagCount, TaskCreate, TaskStats, TaskUpdate
from service.web.errors import TASK_NOT_FOUND, ApiError, NotFound, PreconditionFailed, QuotaExceeded

DEFAULT_MAX_TASKS = 100_000
# Idempotency-Keys one user may hold: each keeps its task's row (a few KB at most) for 24 hours.
DEFAULT_MAX_KEYS = 1000

# The user's row counts their tasks and hands out the key of a new first task (positions.py): the
# upsert locks that row, so concurrent creates of one user take distinct keys, one after another.
_claim_slot = insert(users).values(
    id=USER, task_count=literal_column("1"), position_head=literal_column("-1")
)
_slot = (
    _claim_slot.on_conflict_do_update(
        index_elements=[users.c.id],
        set_={
            "task_count": users.c.task_count + literal_column("1"),
            "position_head": users.c.position_head - literal_column("1"),
        },
        # At the quota the row is locked but not updated: nothing returns, so nothing is inserted.
        # The check reads the row's latest version (ON CONFLICT waits for concurrent creates), so
        # it is exact however many creates race.
        where=users.c.task_count < param("max_tasks", Integer),
    )
    .returning(users.c.id, users.c.position_head)
    .cte("slot")
)


_first_position = int_key(_slot.c.position_head)
_TAG_KEYS = param("tag_keys", ARRAY(Text))
_insert_task = insert(tasks).from_select(
    ["user_id", "id", "created_at", "updated_at", "position", "tag_keys", *TaskCreate.__struct_fields__],
    select(
        _slot.c.id,
        param("task_id", tasks.c.id.type),
        param("now", tasks.c.created_at.type),
        param("now", tasks.c.created_at.type),
        _first_position,
        _TAG_KEYS,
        *bind_fields(TaskCreate).values(),
    ),
)
_new_task = _insert_task.returning(*tasks.c).cte("new_task")
# The replay of an Idempotency-Key is the row PostgreSQL returned, stored by the statement that
# creates it: both happen or neither.
_complete_key = (
    update(keys)
    .where(keys.c.user_id == USER, keys.c.key == param("key", Text))
    .values(
        status=param("status", SmallInteger),
        response=func.convert_to(cast(func.row_to_json(_new_task.table_valued()), Text), "UTF8"),
    )
    .cte("completed_key")
)


def _completed_at(completed: ColumnElement[bool]) -> ColumnElement[Any]:
    """When `completed` last became true: kept while it stays true (set to the same value), else cleared."""
    return case((completed, func.coalesce(tasks.c.completed_at, param("now"))), else_=None)


CREATE = Query.of(_insert_task.returning(*RETURNED))
CREATE_WITH_KEY = Query.of(select(*(_new_task.c[c.name] for c in RETURNED)).add_cte(_new_task, _complete_key))
GET = Query.of(select(*RETURNED).where(*OWNED))
EXISTS = Query.of(select(tasks.c.version).where(*OWNED))
# Every field of TaskUpdate: set when given (`set_<name>`), else kept; null is a value (description).
UPDATE = Query.of(
    update(tasks)
    .where(*OWNED, MATCHES)
    .values(
        **{
            name: case((param(f"set_{name}", Boolean), value), else_=tasks.c[name])
            for name, value in bind_fields(TaskUpdate).items()
        },
        completed_at=_completed_at(
            case((param("set_completed", Boolean), param("completed", Boolean)), else_=tasks.c.completed)
        ),
        tag_keys=case((param("set_tags", Boolean), _TAG_KEYS), else_=tasks.c.tag_keys),
        **BUMP,
    )
    .returning(*RETURNED)
)
SET_COMPLETED = Query.of(
    update(tasks)
    .where(*OWNED, MATCHES)
    .values(
        completed=func.coalesce(param("completed", Boolean), ~tasks.c.completed),
        completed_at=_completed_at(func.coalesce(param("completed", Boolean), ~tasks.c.completed)),
        **BUMP,
    )
    .returning(*RETURNED)
)
_deleted = delete(tasks).where(*OWNED, MATCHES).returning(*RETURNED).cte("deleted")
# The count goes down only for a row this statement deleted (a concurrent DELETE of it finds none).
_uncount = (
    update(users)
    .where(users.c.id == USER, select(_deleted.c.id).exists())
    .values(task_count=users.c.task_count - literal_column("1"))
    .cte("uncounted")
)
DELETE = Query.of(select(*(_deleted.c[c.name] for c in RETURNED)).add_cte(_uncount))

_active = ~tasks.c.completed & (tasks.c.user_id == USER)
# Tags are counted by their folded form and shown in the spelling most tasks use (ties: the first
# by code point), from the per-spelling counts the triggers keep (sql/006): one row per spelling.
_shown_name = func.array_agg(
    aggregate_order_by(tag_counts.c.tag, tag_counts.c.tasks.desc(), tag_counts.c.tag)
)[1]
_tag_counts = (
    select(_shown_name.label("name"), func.sum(tag_counts.c.tasks).label("count"))
    .where(tag_counts.c.user_id == USER, tag_counts.c.tasks > literal_column("0"))
    .group_by(tag_counts.c.tag_key)
    .order_by(func.sum(tag_counts.c.tasks).desc(), _shown_name)
    .limit(literal_column(str(STATS_TAGS_MAX)))
    .cte("tag_totals")
)
_tag_order = (_tag_counts.c.count.desc(), _tag_counts.c.name.collate("C"))
_mine = tasks.c.user_id == USER
STATS = Query.of(
    select(
        func.coalesce(
            select(users.c.task_count).where(users.c.id == USER).scalar_subquery(),
            literal_column("0"),
        ).label("total"),
        func.coalesce(
            select(users.c.completed_count).where(users.c.id == USER).scalar_subquery(),
            literal_column("0"),
        ).label("completed"),
        select(func.count())
        .where(_active, tasks.c.due_at < param("now", tasks.c.due_at.type))
        .scalar_subquery()
        .label("overdue"),
        select(func.array_agg(aggregate_order_by(_tag_counts.c.name, *_tag_order)))
        .scalar_subquery()
        .label("tag_names"),
        select(func.array_agg(aggregate_order_by(_tag_counts.c.count, *_tag_order)))
        .scalar_subquery()
        .label("tag_counts"),
    )
)
# One statement, so one transaction: the count goes down by exactly the rows it deleted.
_cleared = delete(tasks).where(_mine, tasks.c.completed).returning(tasks.c.id).cte("cleared")
_cleared_count = select(func.count()).select_from(_cleared).scalar_subquery()
_uncount_cleared = (
    update(users)
    .where(users.c.id == USER, _cleared_count > literal_column("0"))
    .values(task_count=users.c.task_count - _cleared_count)
    .cte("uncounted_cleared")
)
CLEAR_COMPLETED = Query.of(select(_cleared_count.label("deleted")).add_cte(_uncount_cleared))


def _changes(changes: msgspec.Struct) -> dict[str, Any]:
    """UPDATE's parameters for a partial body: each field's value and whether it was given."""
    values: dict[str, Any] = {}
    for name in changes.__struct_fields__:
        value = getattr(changes, name)
        values[f"set_{name}"] = value is not UNSET
        values[name] = None if value is UNSET else value
    return values


class TaskStore:
    """Runs the task statements on the shared runner; every method takes the owner's id."""

    def __init__(
        self, runner: Runner, max_tasks: int = DEFAULT_MAX_TASKS, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        self.runner = runner
        self._one = runner.one
        self._max_tasks = max_tasks
        self.max_keys = max_keys

    async def _task(self, query: Query, **values: Any) -> StoredTask | None:
        row = await self._one(query, **values)
        return None if row is None else StoredTask.from_row(row)

    async def create(
        self,
        user_id: str,
        task_id: uuid.UUID,
        now: datetime,
        body: TaskCreate,
        *,
        key: str | None = None,
    ) -> StoredTask:
        """Insert the task (and its user on their first write); with `key`, complete that key too."""
        values = {
            "user_id": user_id,
            "task_id": task_id,
            "now": now,
            "max_tasks": self._max_tasks,
            "tag_keys": tag_keys(body.tags),
            **msgspec.structs.asdict(body),
        }
        if key is None:
            row = await self._one(CREATE, **values)
        else:
            row = await self._one(CREATE_WITH_KEY, key=key, status=201, **values)
        if row is None:  # the user's row said no: they hold MAX_TASKS_PER_USER tasks already
            raise QuotaExceeded(f"You already hold the most tasks allowed: {self._max_tasks:,}")
        return StoredTask.from_row(row)

    async def get(self, user_id: str, task_id: uuid.UUID) -> StoredTask | None:
        return await self._task(GET, user_id=user_id, task_id=task_id)

    async def exists(self, user_id: str, task_id: uuid.UUID) -> bool:
        return await self._one(EXISTS, user_id=user_id, task_id=task_id) is not None

    async def update(
        self, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None, changes: TaskUpdate
    ) -> StoredTask | None:
        """Apply the fields `changes` gives; None when no task of this user matches `versions`."""
        keys = None if changes.tags is UNSET else tag_keys(changes.tags)
        return await self._task(
            UPDATE,
            user_id=user_id,
            task_id=task_id,
            versions=versions,
            now=utc_now(),
            tag_keys=keys,
            **_changes(changes),
        )

    async def set_completed(
        self, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None, completed: bool | None
    ) -> StoredTask | None:
        """Set `completed`, or toggle it when None, in one statement: concurrent toggles never lose one."""
        return await self._task(
            SET_COMPLETED,
            user_id=user_id,
            task_id=task_id,
            versions=versions,
            completed=completed,
            now=utc_now(),
        )

    async def delete(
        self, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None
    ) -> StoredTask | None:
        return await self._task(DELETE, user_id=user_id, task_id=task_id, versions=versions)

    async def stats(self, user_id: str) -> TaskStats:
        row = await self._one(STATS, user_id=user_id, now=utc_now())
        if row is None:  # a SELECT without FROM returns its one row
            raise RuntimeError("the stats query returned no row")
        names, counts = row["tag_names"] or [], row["tag_counts"] or []
        return TaskStats(
            total=row["total"],
            active=row["total"] - row["completed"],
            completed=row["completed"],
            overdue=row["overdue"],
            tags=[TagCount(name, count) for name, count in zip(names, counts, strict=True)],
        )

    async def clear_completed(self, user_id: str) -> int:
        """Delete every completed task of the user, in one statement; how many there were."""
        deleted = await self._one(CLEAR_COMPLETED, user_id=user_id)
        if deleted is None:  # likewise
            raise RuntimeError("clear-completed returned no row")
        return int(deleted["deleted"])

    async def list(self, user_id: str, query: ListQuery, after: bytes | None = None) -> listing.Page:
        """One page of `query`, starting past the position `after` (from an earlier Page.next)."""
        return await listing.page(self.runner, user_id, query, after)

    async def missing_or_stale(self, user_id: str, task_id: uuid.UUID) -> ApiError:
        """Why a conditional write touched no row: the task is gone (404) or its ETag moved on (412)."""
        if await self.exists(user_id, task_id):
            return PreconditionFailed()
        return NotFound(TASK_NOT_FOUND)
