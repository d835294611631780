"""Moves: a task, with its subtree, to a new place among siblings, under a parent, or in a list.

A move rewrites the task's row, and its descendants' only where their tree keys or their list
change with it (tree/keys.py); every other task keeps its position and its ETag, a rare respacing
of crowded siblings aside (order/respace.py). It runs under the user's lock (tree/nodes.py), so
no concurrent move can make a cycle with it or nest a subtree past four levels.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from asyncpg.pool import PoolConnectionProxy
from msgspec import UNSET
from sqlalchemy import Boolean, Integer, Text, case
from sqlalchemy.sql import func, select, update

from service.db.statements import Query, Runner, param
from service.lists.columns import lists
from service.tasks.columns import BUMP, OWNED, RETURNED, USER, StoredTask, tasks, utc_now
from service.tasks.fields import (
    ANCHOR_RULE,
    LEVELS_RULE,
    LIST_RULE,
    OUTSIDE_RULE,
    PARENT_RULE,
    SAME_LIST_RULE,
)
from service.tasks.order import positions
from service.tasks.order.respace import SET_HEAD, respace, siblings_around
from service.tasks.schemas import TaskMove
from service.tasks.tree import keys, nodes
from service.tasks.tree.nodes import Node
from service.tasks.tree.writes import reopening
from service.web.errors import TASK_NOT_FOUND, NotFound, PreconditionFailed, invalid

LIST_EXISTS = Query.of(
    select(lists.c.id).where(lists.c.user_id == USER, lists.c.id == param("list_id", lists.c.id.type))
)


@dataclass(frozen=True, slots=True)
class Place:
    """Where the moved task goes: its list, parent and ancestry, and the sibling it goes beside."""

    field: str
    list_id: uuid.UUID | None
    parent_id: uuid.UUID | None
    ancestry: str | None
    beside: Node | None = None
    after: bool = False

    @property
    def parent_level(self) -> int:
        return keys.level(self.ancestry) - 1


@functools.cache
def _write(old_inbox: bool, new_inbox: bool) -> Query:
    """The task's new place, its subtree's keys (and list) after it, and its new ancestors reopened."""
    new_list = param("new_list", tasks.c.list_id.type)
    relisted = param("relisted", Boolean)
    moved = (
        update(tasks)
        .where(*OWNED)
        .values(
            list_id=new_list,
            parent_id=param("new_parent", tasks.c.parent_id.type),
            ancestry=param("new_ancestry", Text),
            position=param("position", Text),
            **BUMP,
        )
        .returning(*RETURNED)
        .cte("moved")
    )
    # The descendants' ancestries start with the task's old key: it becomes the new one. Their
    # versions change only when their list does (their ETags show list_id, not the ancestry).
    subtree = (
        update(tasks)
        .where(
            tasks.c.user_id == USER,
            keys.in_list(old_inbox),
            keys.subtree(param("old_key", Text), inclusive=False),
        )
        .values(
            ancestry=param("new_key", Text).op("||")(
                func.substr(tasks.c.ancestry, param("old_key_length", Integer) + 1)
            ),
            list_id=new_list,
            version=tasks.c.version + case((relisted, 1), else_=0),
            updated_at=case((relisted, param("now")), else_=tasks.c.updated_at),
        )
        .cte("subtree")
    )
    reopened = reopening(new_inbox, param("up", Boolean), list_name="new_list").cte("reopened")
    return Query.of(select(*(moved.c[c.name] for c in RETURNED)).add_cte(subtree, reopened))


async def move(
    runner: Runner, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None, placement: TaskMove
) -> StoredTask:
    """Move the task as `placement` says, in one transaction under the user's lock."""
    async with runner.held(LIST_EXISTS, user_id) as conn, conn.transaction():
        return await _move(conn, runner.timeout, user_id, task_id, versions, placement)


async def _move(
    conn: PoolConnectionProxy,
    bound: float,
    user_id: str,
    task_id: uuid.UUID,
    versions: Sequence[int] | None,
    placement: TaskMove,
) -> StoredTask:
    task = await nodes.lock_task(conn, bound, user_id, task_id)
    if task is None:
        raise NotFound(TASK_NOT_FOUND)
    if versions is not None and task.version not in versions:
        raise PreconditionFailed()
    place = await _place(conn, bound, user_id, task, placement)
    if place.parent_level != task.level - 1:
        tall = await nodes.height(conn, bound, user_id, task)
        if not keys.fits(place.parent_level, tall):
            raise invalid(place.field, LEVELS_RULE)
    head: int = await conn.fetchval(nodes.HEAD.sql, *nodes.HEAD.args({"user_id": user_id}), timeout=bound)
    start = head
    position = None
    beside = place.beside
    if beside is not None:
        for respaced in (False, True):
            low, high = await siblings_around(conn, bound, user_id, task, beside, place.after)
            if low is None:
                break
            position = positions.key_between(low, high)
            if respaced or not positions.too_long(position):
                break
            task, head = await respace(conn, bound, user_id, task, beside, low, high, head)
            # The anchor has a new key too: read it again.
            beside = await nodes.node(conn, bound, user_id, beside.id)
            if beside is None:
                raise RuntimeError("a sibling of the locked user went missing")
            position = None
    if position is None:  # the front: a fresh integer below every key, from the counter creates use too
        head -= 1
        position = positions.int_key(head)
    if head != start:
        await conn.execute(SET_HEAD.sql, *SET_HEAD.args({"user_id": user_id, "head": head}), timeout=bound)
    new_key = keys.tree_key(place.ancestry, position)
    values = {
        "user_id": user_id,
        "task_id": task_id,
        "list_id": task.list_id,
        "new_list": place.list_id,
        "new_parent": place.parent_id,
        "new_ancestry": place.ancestry,
        "position": position,
        "old_key": task.key,
        "old_key_length": len(task.key),
        "new_key": new_key,
        "relisted": place.list_id != task.list_id,
        "up": not task.completed and place.ancestry is not None,
        "ancestors": keys.ancestor_keys(place.ancestry),
        "now": utc_now(),
    }
    query = _write(task.list_id is None, place.list_id is None)
    row = await conn.fetchrow(query.sql, *query.args(values), timeout=bound)
    if row is None:  # the task is locked by this transaction: it cannot be gone
        raise RuntimeError("the locked task was not updated")
    return StoredTask.from_row(row)


async def _place(
    conn: PoolConnectionProxy, bound: float, user_id: str, task: Node, placement: TaskMove
) -> Place:
    """Read and check the placement's anchor, parent or list (422 naming its field when it will not do)."""
    for side in ("before", "after"):
        anchor_id = getattr(placement, side)
        if isinstance(anchor_id, uuid.UUID):
            anchor = await nodes.node(conn, bound, user_id, anchor_id)
            if anchor is None:
                raise invalid(side, ANCHOR_RULE)
            if task.holds(anchor):
                raise invalid(side, OUTSIDE_RULE)
            return Place(side, anchor.list_id, anchor.parent_id, anchor.ancestry, anchor, side == "after")
    if isinstance(placement.parent_id, uuid.UUID):
        parent = await nodes.node(conn, bound, user_id, placement.parent_id)
        if parent is None:
            raise invalid("parent_id", PARENT_RULE)
        if task.holds(parent):
            raise invalid("parent_id", OUTSIDE_RULE)
        if placement.list_id is not UNSET and placement.list_id != parent.list_id:
            raise invalid("list_id", SAME_LIST_RULE)
        return Place("parent_id", parent.list_id, parent.id, keys.child_ancestry(parent.key))
    if placement.list_id is UNSET:  # {"parent_id": null}: the top of its own list
        return Place("parent_id", task.list_id, None, None)
    if placement.list_id is not None:
        values = {"user_id": user_id, "list_id": placement.list_id}
        if await conn.fetchval(LIST_EXISTS.sql, *LIST_EXISTS.args(values), timeout=bound) is None:
            raise invalid("list_id", LIST_RULE)
    return Place("list_id", placement.list_id, None, None)
