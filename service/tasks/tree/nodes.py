"""A task's place in the tree, read under the user's lock, and the statements that read it.

Every write that reads the tree and then changes it first takes the user's row lock (sql/008's
lock_user), in the statement that locks its task: the task row comes back as it is now, and every
later statement of the transaction sees every write committed before the lock was taken. One user's
structural writes therefore run one after another, never interleaved: no cycle, depth or
completion check can be overtaken by another request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from sqlalchemy.sql import func, select

from service.db.statements import Query, param
from service.tasks.columns import OWNED, USER, tasks, users
from service.tasks.tree import keys

# `(SELECT lock_user(...))` is a one-time filter: PostgreSQL runs it before reading any task row,
# so the user's lock is always taken before a task's (the order every writer keeps).
LOCKED = select(func.lock_user(USER)).scalar_subquery()
_NODE_COLUMNS = (
    tasks.c.id,
    tasks.c.version,
    tasks.c.completed,
    tasks.c.list_id,
    tasks.c.parent_id,
    tasks.c.ancestry,
    tasks.c.position,
)
LOCK_TASK = Query.of(select(*_NODE_COLUMNS).where(LOCKED, *OWNED).with_for_update(key_share=True))
# Later statements of the transaction: the lock is held, so a plain read is current.
NODE = Query.of(
    select(*_NODE_COLUMNS).where(tasks.c.user_id == USER, tasks.c.id == param("node_id", tasks.c.id.type))
)
HEAD = Query.of(select(users.c.position_head).where(users.c.id == USER))


@dataclass(frozen=True, slots=True)
class Node:
    """Where a task sits: its list, its parent, its ancestry and position, and its state."""

    id: uuid.UUID
    version: int
    completed: bool
    list_id: uuid.UUID | None
    parent_id: uuid.UUID | None
    ancestry: str | None
    position: str

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Node:
        return cls(*row)

    @property
    def key(self) -> str:
        return keys.tree_key(self.ancestry, self.position)

    @property
    def level(self) -> int:
        return keys.level(self.ancestry)

    def holds(self, other: Node) -> bool:
        """Whether `other` is this task or one of its descendants."""
        return other.list_id == self.list_id and (
            other.key == self.key or other.key.startswith(keys.child_ancestry(self.key))
        )


async def lock_task(conn: PoolConnectionProxy, bound: float, user_id: str, task_id: uuid.UUID) -> Node | None:
    """Lock the user's row, then the task's; the task as it is now, or None if it is not theirs."""
    row = await conn.fetchrow(
        LOCK_TASK.sql, *LOCK_TASK.args({"user_id": user_id, "task_id": task_id}), timeout=bound
    )
    return None if row is None else Node.from_row(row)


async def node(conn: PoolConnectionProxy, bound: float, user_id: str, node_id: uuid.UUID) -> Node | None:
    row = await conn.fetchrow(NODE.sql, *NODE.args({"user_id": user_id, "node_id": node_id}), timeout=bound)
    return None if row is None else Node.from_row(row)


def _height_query(inbox: bool) -> Query:
    return Query.of(
        select(func.max(keys.depth_of(tasks.c.ancestry))).where(
            tasks.c.user_id == USER, keys.in_list(inbox), keys.subtree(param("key"))
        )
    )


_HEIGHT = {inbox: _height_query(inbox) for inbox in (False, True)}


async def height(conn: PoolConnectionProxy, bound: float, user_id: str, task: Node) -> int:
    """How many levels the task's subtree spans: 1 for a task without subtasks."""
    query = _HEIGHT[task.list_id is None]
    deepest = await conn.fetchval(
        query.sql, *query.args({"user_id": user_id, "list_id": task.list_id, "key": task.key}), timeout=bound
    )
    return int(deepest) - (task.level - 1) + 1 if deepest is not None else 1
