"""The order of a user's lists: a move rewrites one list's position key, and rarely renumbers them all.

Keys are the tasks' (service/tasks/order/positions.py). A user has at most MAX_LISTS_PER_USER lists,
a few hundred, so a renumbering rewrites all of them at once rather than a window around the gap.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Text, column
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import func, select, update
from sqlalchemy.sql.expression import literal_column

from service.db.statements import Query, param
from service.lists.columns import BUMP, OWNED, RETURNED, USER, StoredList, lists
from service.lists.fields import LIST_ANCHOR_RULE
from service.lists.transaction import Locked
from service.tasks.columns import utc_now
from service.tasks.order import positions
from service.web.errors import invalid

_anchor = lists.alias("anchor")
_other = lists.alias("other")
_MOVED = param("list_id", lists.c.id.type)


def _nearest(aggregate: Callable[[Any], Any], before: bool) -> Any:
    """The position next to the anchor on one side, leaving out the list being moved."""
    beside = _other.c.position < _anchor.c.position if before else _other.c.position > _anchor.c.position
    return (
        select(aggregate(_other.c.position))
        .where(_other.c.user_id == USER, beside, _other.c.id != _MOVED)
        .scalar_subquery()
    )


NEIGHBOURS = Query.of(
    select(
        _anchor.c.position,
        _nearest(func.max, True).label("previous"),
        _nearest(func.min, False).label("next"),
    ).where(_anchor.c.user_id == USER, _anchor.c.id == param("anchor_id", lists.c.id.type))
)
MOVE = Query.of(
    update(lists).where(*OWNED).values(position=param("position", Text), **BUMP).returning(*RETURNED)
)
OTHERS = Query.of(
    select(lists.c.id, lists.c.position)
    .where(lists.c.user_id == USER, lists.c.id != _MOVED)
    .order_by(lists.c.position)
)
_placed = (
    func.unnest(param("ids", ARRAY(lists.c.id.type)), param("keys", ARRAY(Text)))
    .table_valued(column("id", lists.c.id.type), column("key", Text))
    .render_derived(name="placed")
)
# The unique key is checked row by row, so new keys could meet old ones mid-statement: the lists
# are first parked on integers below every key (the user's row is locked, so no create takes
# them), then given their new keys. Versions change (new ETags), updated_at does not: nobody
# edited these lists. Parking leaves versions alone, so it takes no change number.
PARK = Query.of(
    update(lists).where(lists.c.user_id == USER, lists.c.id == _placed.c.id).values(position=_placed.c.key)
)
PLACE = Query.of(
    update(lists)
    .where(lists.c.user_id == USER, lists.c.id == _placed.c.id)
    .values(position=_placed.c.key, version=lists.c.version + literal_column("1"))
)


async def move(
    tx: Locked, list_id: uuid.UUID, versions: Sequence[int] | None, anchor_id: uuid.UUID, after: bool
) -> StoredList:
    """Put the list right after (or before) the anchor, rewriting its row alone (rarely all of them)."""
    own = await tx.list_row(list_id, versions)
    around = await tx.one(NEIGHBOURS, list_id=list_id, anchor_id=anchor_id)
    if around is None:
        raise invalid("after" if after else "before", LIST_ANCHOR_RULE)
    low, high = (around["position"], around["next"]) if after else (around["previous"], around["position"])
    key = positions.key_between(low, high)
    if positions.too_long(key):
        key = await _renumber(tx, list_id, own["position"], anchor_id, after)
    row = await tx.one(MOVE, list_id=list_id, position=key, now=utc_now())
    if row is None:  # the list is locked by this transaction: it cannot be gone
        raise RuntimeError("the locked list was not moved")
    return StoredList.from_row(row)


async def _renumber(tx: Locked, list_id: uuid.UUID, own: str, anchor_id: uuid.UUID, after: bool) -> str:
    """Give every list of the user an integer key, in order with the moved one in its new place; its key."""
    rows = await tx.all(OTHERS, list_id=list_id)
    ids: list[uuid.UUID] = [row["id"] for row in rows]
    ids.insert(ids.index(anchor_id) + after, list_id)
    keys = positions.rebalanced(0, len(ids))
    lowest = min(0, positions.integer_part(rows[0]["position"]), positions.integer_part(own))
    parked = [positions.int_key(lowest - len(ids) - 1 + n) for n in range(len(ids))]
    await tx.execute(PARK, ids=ids, keys=parked)
    # The moved list is placed by the move itself, which bumps its version once.
    placed = [(i, k) for i, k in zip(ids, keys, strict=True) if i != list_id]
    await tx.execute(PLACE, ids=[i for i, _ in placed], keys=[k for _, k in placed])
    return keys[ids.index(list_id)]
