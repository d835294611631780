"""Task CRUD, stats and clear-completed: each one statement, compiled once, naming its user.

The listing (listing/), the manual order (order/) and Idempotency-Key claims (idempotency.py)
keep their own SQL; `TaskStore` is the one door the routes go through to all of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy
from msgspec import UNSET, UnsetType
from sqlalchemy import Boolean, Integer, SmallInteger, Text, case, cast, func
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.sql import ColumnElement, select, update
from sqlalchemy.sql.expression import literal_column

from service.db.statements import Query, Runner, param
from service.lists.columns import lists
from service.tasks import stats
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
    tasks,
    users,
    utc_now,
)
from service.tasks.fields import LEVELS_RULE, LIST_RULE, MAX_LEVELS, PARENT_RULE, SAME_LIST_RULE, tag_keys
from service.tasks.listing import query as listing
from service.tasks.listing import tree as tree_listing
from service.tasks.schemas import ListQuery, TaskCreate, TaskRead, TaskStats, TaskUpdate
from service.tasks.tree import keys as tree_keys
from service.tasks.tree import nodes
from service.tasks.tree.keys import in_list
from service.tasks.tree.nodes import LOCKED
from service.tasks.tree.writes import DELETE_SUBTREE, REOPEN, cascading, deleting
from service.web.errors import TASK_NOT_FOUND, ApiError, NotFound, PreconditionFailed, QuotaExceeded, invalid

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
    [
        "user_id",
        "id",
        "created_at",
        "updated_at",
        "position",
        "tag_keys",
        "ancestry",
        *TaskCreate.__struct_fields__,
    ],
    select(
        _slot.c.id,
        param("task_id", tasks.c.id.type),
        param("now", tasks.c.created_at.type),
        param("now", tasks.c.created_at.type),
        _first_position,
        _TAG_KEYS,
        param("ancestry", tasks.c.ancestry.type),
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
_update_target = (
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
)
# An update that leaves `completed` alone changes no other task: one statement, the user's lock first.
UPDATE = Query.of(_update_target.where(LOCKED).returning(*RETURNED))
_completion_target = (
    update(tasks)
    .where(*OWNED, MATCHES)
    .values(
        completed=param("completed", Boolean),
        completed_at=_completed_at(param("completed", Boolean)),
        **BUMP,
    )
)
# Completion, set by an update or by .../complete, with its cascade (tree/writes.py).
CASCADING_UPDATE = {inbox: cascading(_update_target, inbox) for inbox in (False, True)}
CASCADING_COMPLETION = {inbox: cascading(_completion_target, inbox) for inbox in (False, True)}


# Every completed task of the user, or of one list: a completed task's subtasks are completed
# too, so whole subtrees go, and no task is left without its parent. `list_found` tells a list that
# is not the user's from an empty one.
def _clear_completed(*conditions: ColumnElement[bool]) -> Query:
    _, count, uncounted = deleting(LOCKED, tasks.c.completed, *conditions)
    found = select(lists.c.id).where(lists.c.user_id == USER, lists.c.id == param("list_id")).exists()
    return Query.of(select(count.label("deleted"), found.label("list_found")).add_cte(uncounted))


CLEAR_COMPLETED = _clear_completed()
CLEAR_COMPLETED_IN = {inbox: _clear_completed(in_list(inbox)) for inbox in (False, True)}


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
        """Insert the task (and its user on their first write); with `key`, complete that key too.

        A top-level task is one statement (its list checked by the foreign key); a subtask locks
        its parent first, goes into the parent's list, and reopens the parent if it was completed.
        """
        values = {
            "user_id": user_id,
            "task_id": task_id,
            "now": now,
            "max_tasks": self._max_tasks,
            "tag_keys": tag_keys(body.tags),
            **msgspec.structs.asdict(body),
            "list_id": None if body.list_id is UNSET else body.list_id,
            "ancestry": None,
        }
        if key is not None:
            values.update(key=key, status=201)
        query = CREATE if key is None else CREATE_WITH_KEY
        try:
            if body.parent_id is None:
                row = await self._one(query, **values)
            else:
                async with self.runner.held(query, user_id) as conn, conn.transaction():
                    row = await self._create_under(conn, query, values, body.parent_id, body.list_id)
        except asyncpg.ForeignKeyViolationError:  # the list is not theirs (or went since)
            raise invalid("list_id", LIST_RULE) from None
        if row is None:  # the user's row said no: they hold MAX_TASKS_PER_USER tasks already
            raise QuotaExceeded(f"You already hold the most tasks allowed: {self._max_tasks:,}")
        return StoredTask.from_row(row)

    async def _create_under(
        self,
        conn: PoolConnectionProxy,
        query: Query,
        values: dict[str, Any],
        parent_id: uuid.UUID,
        list_id: uuid.UUID | UnsetType | None,
    ) -> asyncpg.Record | None:
        bound = self.runner.timeout
        parent = await nodes.lock_task(conn, bound, values["user_id"], parent_id)
        if parent is None:
            raise invalid("parent_id", PARENT_RULE)
        if parent.level >= MAX_LEVELS:
            raise invalid("parent_id", LEVELS_RULE)
        if list_id is not UNSET and list_id != parent.list_id:
            raise invalid("list_id", SAME_LIST_RULE)
        values.update(list_id=parent.list_id, ancestry=tree_keys.child_ancestry(parent.key))
        row = await conn.fetchrow(query.sql, *query.args(values), timeout=bound)
        if row is not None and parent.completed:
            reopen = REOPEN[parent.list_id is None]
            above = [*tree_keys.ancestor_keys(parent.ancestry), parent.key]
            await conn.execute(reopen.sql, *reopen.args({**values, "ancestors": above}), timeout=bound)
        return row

    async def get(self, user_id: str, task_id: uuid.UUID) -> StoredTask | None:
        return await self._task(GET, user_id=user_id, task_id=task_id)

    async def exists(self, user_id: str, task_id: uuid.UUID) -> bool:
        return await self._one(EXISTS, user_id=user_id, task_id=task_id) is not None

    async def update(
        self, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None, changes: TaskUpdate
    ) -> StoredTask | None:
        """Apply the fields `changes` gives; None when no task of this user matches `versions`."""
        keys = None if changes.tags is UNSET else tag_keys(changes.tags)
        values = {
            "user_id": user_id,
            "task_id": task_id,
            "versions": versions,
            "now": utc_now(),
            "tag_keys": keys,
            **_changes(changes),
        }
        if changes.completed is UNSET:
            return await self._task(UPDATE, **values)
        return await self._cascade(CASCADING_UPDATE, values, changes.completed)

    async def set_completed(
        self, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None, completed: bool | None
    ) -> StoredTask | None:
        """Set `completed`, or toggle it when None, under the user's lock: concurrent toggles never lose one."""
        values = {"user_id": user_id, "task_id": task_id, "versions": versions, "now": utc_now()}
        return await self._cascade(CASCADING_COMPLETION, values, completed)

    async def _cascade(
        self, queries: dict[bool, Query], values: dict[str, Any], completed: bool | None
    ) -> StoredTask | None:
        """Write the task and, if its completion changes, complete its subtree or reopen its ancestors."""
        bound = self.runner.timeout
        async with self.runner.held(queries[True], values["user_id"]) as conn, conn.transaction():
            task = await nodes.lock_task(conn, bound, values["user_id"], values["task_id"])
            versions = values["versions"]
            # The cascade's statements do not look at If-Match: a stale one must stop it here.
            if task is None or (versions is not None and task.version not in versions):
                return None
            done = not task.completed if completed is None else completed
            changed = done != task.completed
            query = queries[task.list_id is None]
            cascade = {
                "completed": done,
                "list_id": task.list_id,
                "key": task.key,
                "ancestors": tree_keys.ancestor_keys(task.ancestry),
                "down": changed and done,
                "up": changed and not done,
            }
            row = await conn.fetchrow(query.sql, *query.args({**values, **cascade}), timeout=bound)
        return None if row is None else StoredTask.from_row(row)

    async def delete(
        self, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None
    ) -> tuple[StoredTask, int] | None:
        """Delete the task and its subtasks; the task as it was and how many subtasks went with it."""
        bound = self.runner.timeout
        async with self.runner.held(DELETE_SUBTREE[True], user_id) as conn, conn.transaction():
            task = await nodes.lock_task(conn, bound, user_id, task_id)
            if task is None or (versions is not None and task.version not in versions):
                return None
            query = DELETE_SUBTREE[task.list_id is None]
            values = {"user_id": user_id, "task_id": task_id, "list_id": task.list_id, "key": task.key}
            row = await conn.fetchrow(query.sql, *query.args(values), timeout=bound)
        if row is None:  # the task is locked by this transaction: it cannot be gone
            raise RuntimeError("the locked task was not deleted")
        return StoredTask(TaskRead(*row[:-2]), row[-2]), int(row["subtasks"])

    async def stats(self, user_id: str, list_filter: str | None = None) -> TaskStats:
        return await stats.stats(self.runner, user_id, utc_now(), list_filter)

    async def clear_completed(self, user_id: str, list_id: uuid.UUID | UnsetType | None = UNSET) -> int:
        """Delete the user's completed tasks (of one list, `None` the Inbox), in one statement; how many."""
        if list_id is UNSET:
            row = await self._one(CLEAR_COMPLETED, user_id=user_id, list_id=None)
        else:
            row = await self._one(CLEAR_COMPLETED_IN[list_id is None], user_id=user_id, list_id=list_id)
            if row is not None and list_id is not None and not row["list_found"]:
                raise invalid("list_id", LIST_RULE)
        if row is None:  # a SELECT without FROM returns its one row
            raise RuntimeError("clear-completed returned no row")
        return int(row["deleted"])

    async def list(self, user_id: str, query: ListQuery, after: bytes | None = None) -> listing.Page:
        """One page of `query`, starting past the position `after` (from an earlier Page.next)."""
        if query.sort == listing.TREE_SORT:
            return await tree_listing.page(self.runner, user_id, query, after)
        return await listing.page(self.runner, user_id, query, after)

    async def missing_or_stale(self, user_id: str, task_id: uuid.UUID) -> ApiError:
        """Why a conditional write touched no row: the task is gone (404) or its ETag moved on (412)."""
        if await self.exists(user_id, task_id):
            return PreconditionFailed()
        return NotFound(TASK_NOT_FOUND)
