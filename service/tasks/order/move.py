"""The manual order: a move rewrites one task's position key, and rarely renumbers the user's tasks.

Keys are strings that sort as bytes (service/tasks/order/positions.py); a key between two neighbours is
almost always short, and a renumbering makes room when keys in one gap grow too long.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from sqlalchemy import Integer, Text, column
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import func, select, update
from sqlalchemy.sql.expression import literal_column

from service.db.statements import Query, Runner, param
from service.tasks.columns import BUMP, OWNED, RETURNED, USER, StoredTask, tasks, users, utc_now
from service.tasks.fields import ANCHOR_RULE
from service.tasks.order import positions
from service.web.errors import TASK_NOT_FOUND, Conflict, NotFound, PreconditionFailed, invalid

# A move that meets a concurrent writer's locks starts again this many times before a 409.
MOVE_ATTEMPTS = 5

# The manual order (service/tasks/order/positions.py). Every statement that writes a position first locks the
# user's row (a create through its upsert), so positions are written one at a time per user and a
# key computed from the rows it just read is still free when it is written. A move locks its task
# first and the user's row second, the order a DELETE takes them in (task row, then the count).
LOCK_TASK = Query.of(select(tasks.c.version, tasks.c.position).where(*OWNED).with_for_update(key_share=True))
LOCK_USER = Query.of(select(users.c.position_head).where(users.c.id == USER).with_for_update(key_share=True))
_anchor = tasks.alias("anchor")
_other = tasks.alias("other")


def _nearest(aggregate: Callable[[Any], Any], before: bool) -> Any:
    """The position next to the anchor on one side, leaving out the task being moved."""
    beside = _other.c.position < _anchor.c.position if before else _other.c.position > _anchor.c.position
    return (
        select(aggregate(_other.c.position))
        .where(_other.c.user_id == _anchor.c.user_id, beside, _other.c.id != param("task_id"))
        .scalar_subquery()
    )


NEIGHBOURS = Query.of(
    select(
        _anchor.c.position,
        _nearest(func.max, True).label("previous"),
        _nearest(func.min, False).label("next"),
    ).where(_anchor.c.user_id == param("user_id", Text), _anchor.c.id == param("anchor_id", tasks.c.id.type))
)
_head = param("head", users.c.position_head.type)
# Statements of their own, never CTEs beside a write to tasks: a trigger on tasks may write the
# user's row too (the changes feed numbers every change there), and PostgreSQL refuses a statement
# that writes one row both in its own body and in a trigger it fires.
SET_HEAD = Query.of(update(users).where(users.c.id == USER).values(position_head=_head))
MOVE = Query.of(
    update(tasks).where(*OWNED).values(position=param("position", Text), **BUMP).returning(*RETURNED)
)
# A respacing rewrites the keys of the tasks around a crowded gap, never more than it must: the
# nearest RESPACE_WINDOW on each side first (the key just past them on either side bounds the new
# keys), four times as many if their keys would still be long. It waits for no row: a task locked
# by another writer (who may be waiting for the user's row this move holds) makes it fail at
# once, and the move starts again.
RESPACE_WINDOW = 32
_SIDE_LIMIT = param("limit", Integer)
_BOUND = param("bound", Text)
_EXCEPT_MOVED = tasks.c.id != param("task_id")
BEFORE_GAP = Query.of(
    select(tasks.c.id, tasks.c.position)
    .where(tasks.c.user_id == USER, tasks.c.position <= _BOUND, _EXCEPT_MOVED)
    .order_by(tasks.c.position.desc())
    .limit(_SIDE_LIMIT)
    .with_for_update(key_share=True, nowait=True)
)
AFTER_GAP = Query.of(
    select(tasks.c.id, tasks.c.position)
    .where(tasks.c.user_id == USER, tasks.c.position >= _BOUND, _EXCEPT_MOVED)
    .order_by(tasks.c.position.asc())
    .limit(_SIDE_LIMIT)
    .with_for_update(key_share=True, nowait=True)
)
_placed = (
    func.unnest(param("ids", ARRAY(tasks.c.id.type)), param("keys", ARRAY(Text)))
    .table_valued(column("id", tasks.c.id.type), column("key", Text))
    .render_derived(name="placed")
)
# The unique index is checked row by row, so new keys could meet old ones mid-statement: the tasks
# are first parked on integers below every key (the user's row is locked, so no create takes
# them), then given their new keys. Versions change (new ETags), updated_at does not: nobody
# edited these tasks.
PARK = Query.of(
    update(tasks).where(tasks.c.user_id == USER, tasks.c.id == _placed.c.id).values(position=_placed.c.key)
)
PLACE = Query.of(
    update(tasks)
    .where(tasks.c.user_id == USER, tasks.c.id == _placed.c.id)
    .values(position=_placed.c.key, version=tasks.c.version + literal_column("1"))
)


async def move(
    runner: Runner,
    user_id: str,
    task_id: uuid.UUID,
    versions: Sequence[int] | None,
    anchor_id: uuid.UUID,
    after: bool,
) -> StoredTask:
    """Put the task right after (or before) the anchor, rewriting its row alone (rarely a rebalance).

    A move that meets a concurrent writer's locks (only a rebalance can) starts again, a few
    times, then answers 409.
    """
    for attempt in range(MOVE_ATTEMPTS):
        try:
            async with runner.held(MOVE, user_id) as conn, conn.transaction():
                return await _move(conn, runner.timeout, user_id, task_id, versions, anchor_id, after)
        except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
            await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))  # noqa: S311 - jitter
    raise Conflict("The task list is being reordered by another request; try again")


async def _move(
    conn: PoolConnectionProxy,
    bound: float,
    user_id: str,
    task_id: uuid.UUID,
    versions: Sequence[int] | None,
    anchor_id: uuid.UUID,
    after: bool,
) -> StoredTask:
    mine = {"user_id": user_id, "task_id": task_id}
    task = await conn.fetchrow(LOCK_TASK.sql, *LOCK_TASK.args(mine), timeout=bound)
    if task is None:
        raise NotFound(TASK_NOT_FOUND)
    if versions is not None and task["version"] not in versions:
        raise PreconditionFailed()
    head: int = await conn.fetchval(LOCK_USER.sql, *LOCK_USER.args(mine), timeout=bound)
    values = {**mine, "anchor_id": anchor_id}
    start = head
    for rebalanced in (False, True):
        around = await conn.fetchrow(NEIGHBOURS.sql, *NEIGHBOURS.args(values), timeout=bound)
        if around is None:
            raise invalid("after" if after else "before", ANCHOR_RULE)
        low, high = (
            (around["position"], around["next"]) if after else (around["previous"], around["position"])
        )
        if low is None:
            # The front: a fresh integer below every key, from the counter creates use too.
            head -= 1
            key = positions.int_key(head)
        else:
            key = positions.key_between(low, high)
        if rebalanced or not positions.too_long(key):
            break
        head = await _respace(conn, bound, mine, low, high, head)
    if head != start:
        await conn.execute(SET_HEAD.sql, *SET_HEAD.args({**mine, "head": head}), timeout=bound)
    row = await conn.fetchrow(
        MOVE.sql, *MOVE.args({**mine, "position": key, "now": utc_now()}), timeout=bound
    )
    if row is None:  # the task is locked by this transaction: it cannot be gone
        raise RuntimeError("the locked task was not updated")
    return StoredTask.from_row(row)


async def _respace(
    conn: PoolConnectionProxy, bound: float, mine: dict[str, Any], low: str, high: str | None, head: int
) -> int:
    """Give the tasks around the gap (`low`, `high`) short, evenly spread keys; the user's new head.

    The moved task is left out (it is placed after), so the gap beside the anchor lies between two
    consecutive new keys, and a key between them is short.
    """
    window = RESPACE_WINDOW
    while True:
        before = await conn.fetch(
            BEFORE_GAP.sql, *BEFORE_GAP.args({**mine, "bound": low, "limit": window + 1}), timeout=bound
        )
        after = []
        if high is not None:
            after = await conn.fetch(
                AFTER_GAP.sql, *AFTER_GAP.args({**mine, "bound": high, "limit": window + 1}), timeout=bound
            )
        first = before[window]["position"] if len(before) > window else None
        last = after[window]["position"] if len(after) > window else None
        rows = [*reversed(before[:window]), *after[:window]]
        keys = positions.keys_between(first, last, len(rows))
        # Room for a key between two of them, and for some moves into that gap before the next.
        if (first is None and last is None) or max(map(len, keys)) < positions.REBALANCE_ABOVE - 4:
            break
        window *= 4
    ids = [row["id"] for row in rows]
    # Below every key, old and new; the moved task is parked too, as it may sit among the new keys.
    lowest = min(head, positions.integer_part(keys[0]))
    parking = [*ids, mine["task_id"]]
    parked = [positions.int_key(lowest - len(parking) - 1 + n) for n in range(len(parking))]
    await conn.execute(PARK.sql, *PARK.args({**mine, "ids": parking, "keys": parked}), timeout=bound)
    await conn.execute(PLACE.sql, *PLACE.args({**mine, "ids": ids, "keys": keys}), timeout=bound)
    # A window that reached the front may start below the head: creates count down from there.
    return lowest
