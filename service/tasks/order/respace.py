"""Siblings' neighbours for a move, and the rare respacing of crowded siblings' keys.

Keys are strings that sort as bytes (order/positions.py); a key between two siblings is almost
always short, and a respacing makes room when keys in one gap grow too long. Siblings share a
list and an ancestry, so their tree keys sort as their positions: both are read off the tree index.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from asyncpg.pool import PoolConnectionProxy
from sqlalchemy import Integer, Text, column
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import func, select, update
from sqlalchemy.sql.expression import literal_column

from service.db.statements import Query, param
from service.tasks.columns import USER, tasks, users
from service.tasks.order import positions
from service.tasks.tree import keys
from service.tasks.tree.nodes import Node

# A respacing rewrites the keys of the siblings around a crowded gap, never more than it must: the
# nearest RESPACE_WINDOW on each side first (the key just past them on either side bounds the new
# keys), four times as many if their keys would still be long.
RESPACE_WINDOW = 32
# Any key of a top-level task sorts below this (positions use 0-9, A-Z and a-z).
_END = "~"
SET_HEAD = Query.of(
    update(users).where(users.c.id == USER).values(position_head=param("head", users.c.position_head.type))
)


def _siblings(inbox: bool, *, forwards: bool) -> Query:
    """Siblings (same list, same ancestry) past the tree key `key` one way, within [floor, ceiling)."""
    key = param("key", Text)
    side = keys.indexed_key >= key if forwards else keys.indexed_key <= key
    order = keys.tree_order(descending=not forwards)
    return Query.of(
        select(tasks.c.id, tasks.c.position)
        .where(
            tasks.c.user_id == USER,
            keys.in_list(inbox),
            side,
            keys.indexed_key > param("floor", Text),
            keys.indexed_key < param("ceiling", Text),
            tasks.c.ancestry.is_not_distinct_from(param("ancestry", Text)),
            tasks.c.id != param("task_id"),
        )
        .order_by(*order)
        .limit(param("limit", Integer))
    )


_AFTER = {inbox: _siblings(inbox, forwards=True) for inbox in (False, True)}
_BEFORE = {inbox: _siblings(inbox, forwards=False) for inbox in (False, True)}


def _bounds(node: Node) -> dict[str, Any]:
    """The range of tree keys the node's siblings lie in: its parent's subtree, or the whole list."""
    if node.ancestry is None:
        return {"floor": "", "ceiling": _END}
    return {"floor": node.ancestry, "ceiling": node.ancestry[:-1] + keys.PAST_SEPARATOR}


async def _nearest(
    conn: PoolConnectionProxy,
    bound: float,
    user_id: str,
    task: Node,
    beside: Node,
    key: str,
    *,
    forwards: bool,
    limit: int,
) -> list[Any]:
    query = (_AFTER if forwards else _BEFORE)[beside.list_id is None]
    values = {
        "user_id": user_id,
        "list_id": beside.list_id,
        "key": key,
        "ancestry": beside.ancestry,
        "task_id": task.id,
        "limit": limit,
        **_bounds(beside),
    }
    return await conn.fetch(query.sql, *query.args(values), timeout=bound)


async def siblings_around(
    conn: PoolConnectionProxy, bound: float, user_id: str, task: Node, beside: Node, after: bool
) -> tuple[str | None, str | None]:
    """The positions the moved task goes between, beside `beside` (None: no sibling that side)."""
    if after:
        # Past the anchor's own subtree: the next row at its level, if any, is its next sibling.
        rows = await _nearest(
            conn, bound, user_id, task, beside, beside.key + keys.PAST_SEPARATOR, forwards=True, limit=1
        )
        return beside.position, rows[0]["position"] if rows else None
    rows = await _nearest(conn, bound, user_id, task, beside, beside.key, forwards=False, limit=2)
    earlier = [row["position"] for row in rows if row["position"] != beside.position]
    return (earlier[0] if earlier else None), beside.position


_placed = (
    func.unnest(
        param("ids", ARRAY(tasks.c.id.type)), param("old_keys", ARRAY(Text)), param("positions", ARRAY(Text))
    )
    .table_valued(column("id", tasks.c.id.type), column("old_key", Text), column("position", Text))
    .render_derived(name="placed")
)


@functools.cache
def _rekey(inbox: bool) -> Query:
    """Give siblings new positions (versions up by `bump`), and their subtrees the new ancestries.

    The unique tree index is checked row by row, so new keys could meet old ones mid-statement: the
    siblings are first parked on integers below every key (the user's row is locked, so no create
    takes them), then given their new keys.
    """
    siblings = (
        update(tasks)
        .where(tasks.c.user_id == USER, tasks.c.id == _placed.c.id)
        .values(position=_placed.c.position, version=tasks.c.version + param("bump", Integer))
        .cte("siblings")
    )
    prefix = func.coalesce(param("ancestry", Text), literal_column("''")).op("||")(_placed.c.position)
    subtrees = (
        update(tasks)
        .where(
            tasks.c.user_id == USER,
            keys.in_list(inbox),
            keys.indexed_key > _placed.c.old_key,
            keys.indexed_key < keys.past(_placed.c.old_key),
        )
        .values(ancestry=prefix.op("||")(func.substr(tasks.c.ancestry, func.length(_placed.c.old_key) + 1)))
        .cte("subtrees")
    )
    return Query.of(select(literal_column("1")).add_cte(siblings, subtrees))


async def respace(
    conn: PoolConnectionProxy,
    bound: float,
    user_id: str,
    task: Node,
    beside: Node,
    low: str,
    high: str | None,
    head: int,
) -> tuple[Node, int]:
    """Give the siblings around the gap (`low`, `high`) short, evenly spread keys.

    Returns the moved task as it is now (parked, if it is one of these siblings) and the user's new
    head. The moved task is left out of the new keys (it is placed after), so the gap beside the
    anchor lies between two consecutive new keys, and a key between them is short.
    """
    window = RESPACE_WINDOW
    ancestry = beside.ancestry
    while True:
        before = await _nearest(
            conn, bound, user_id, task, beside, keys.tree_key(ancestry, low), forwards=False, limit=window + 1
        )
        after = []
        if high is not None:
            after = await _nearest(
                conn,
                bound,
                user_id,
                task,
                beside,
                keys.tree_key(ancestry, high),
                forwards=True,
                limit=window + 1,
            )
        first = before[window]["position"] if len(before) > window else None
        last = after[window]["position"] if len(after) > window else None
        rows = [*reversed(before[:window]), *after[:window]]
        new = positions.keys_between(first, last, len(rows))
        # Room for a key between two of them, and for some moves into that gap before the next.
        if (first is None and last is None) or max(map(len, new)) < positions.REBALANCE_ABOVE - 4:
            break
        window *= 4
    ids = [row["id"] for row in rows]
    old = [row["position"] for row in rows]
    # The moved task is parked too when it is one of these siblings: it may sit among the new keys.
    sibling = task.list_id == beside.list_id and task.ancestry == ancestry
    if sibling:
        ids, old = [*ids, task.id], [*old, task.position]
    lowest = min(head, positions.integer_part(new[0]))
    parked = [positions.int_key(lowest - len(ids) - 1 + n) for n in range(len(ids))]
    query = _rekey(beside.list_id is None)
    values = {"user_id": user_id, "list_id": beside.list_id, "ancestry": ancestry}

    async def run(old_positions: list[str], new_positions: list[str], count: int, bump: int) -> None:
        placed = {
            "ids": ids[:count],
            "old_keys": [keys.tree_key(ancestry, p) for p in old_positions[:count]],
            "positions": new_positions[:count],
            "bump": bump,
        }
        await conn.execute(query.sql, *query.args({**values, **placed}), timeout=bound)

    # Versions change on the final write only (new ETags); updated_at does not: nobody edited these.
    await run(old, parked, len(ids), 0)
    await run(parked, new, len(rows), 1)
    if sibling:
        task = dataclasses.replace(task, position=parked[-1])
    # A window that reached the front may start below the head: creates count down from there.
    return task, lowest
