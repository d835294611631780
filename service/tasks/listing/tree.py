"""sort=position: tree order, each task followed by its subtasks, the Inbox first, then each list in order.

Within one list the tree index (sql/008) gives the order: a page there is one index range, read
past the last key shown, without a sort step. Across lists the page walks them in their order,
one range each, until it is full; lists with no tasks (the counters say) are skipped unread. A
list's order may change between two pages: the cursor keeps the place of the list it stopped in,
so the walk goes on past that place and never shows a task twice.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from sqlalchemy import Integer, Text
from sqlalchemy.sql import select

from service.db.statements import Query, Runner, param
from service.lists.columns import lists
from service.tasks.columns import READ_COLUMNS, USER, tasks
from service.tasks.fields import CURSOR_RULE, INBOX, PARENT_FILTER_RULE, TOP_LEVEL
from service.tasks.listing.query import FILTERS, Page, bind, check_named, chosen
from service.tasks.schemas import ListQuery, TaskRead
from service.tasks.tree import keys, nodes
from service.web.errors import invalid

_STRUCTURE = ("list_id", "parent_id")
_LISTS_AFTER = Query.of(
    select(lists.c.id, lists.c.position, lists.c.task_count)
    .where(lists.c.user_id == USER, lists.c.position > param("after", Text))
    .order_by(lists.c.position)
)


class TreePosition(msgspec.Struct, array_like=True, frozen=True):
    """Where a page of tree order stopped: the list's place in the order of lists ("" for the
    Inbox), the list (null: the Inbox), and the last task's tree key."""

    list_position: str
    list_id: uuid.UUID | None
    key: str


_decode_position = msgspec.json.Decoder(TreePosition).decode
_encode_position = msgspec.json.Encoder().encode


@functools.cache
def _range_query(inbox: bool, filters: tuple[str, ...], after: bool, under: bool) -> Query:
    """One list's tasks in tree order, optionally past `after_key` and under the task `parent_key`."""
    conditions = [
        tasks.c.user_id == USER,
        keys.in_list(inbox),
        *(FILTERS[name].condition for name in filters),
    ]
    if under:
        conditions.append(keys.subtree(param("parent_key", Text), inclusive=False))
    if after:
        conditions.append(keys.indexed_key > param("after_key", Text))
    return Query.of(
        select(*READ_COLUMNS, keys.indexed_key.label("tree_key"))
        .where(*conditions)
        .order_by(*keys.tree_order())
        .limit(param("limit", Integer))
    )


async def page(runner: Runner, user_id: str, query: ListQuery, after: bytes | None = None) -> Page:
    """One page of `query` in tree order, starting past `after` (from an earlier Page.next)."""
    given = chosen(query, leave_out=_STRUCTURE)
    values: dict[str, Any] = {"user_id": user_id, **bind(given)}
    filters = [name for name, _ in given]
    start = None
    if after is not None:
        try:
            start = _decode_position(after)
        except msgspec.DecodeError:
            raise invalid("cursor", CURSOR_RULE) from None
    under = False
    only: uuid.UUID | str | None = "every list"
    if query.parent_id == TOP_LEVEL:
        filters.append(f"parent_id={TOP_LEVEL}")
    elif isinstance(query.parent_id, str):
        parent = await _parent(runner, user_id, uuid.UUID(query.parent_id))
        filters.append("parent_id")
        values.update(parent_id=parent.id, parent_key=parent.key)
        under, only = True, parent.list_id
        if isinstance(query.list_id, str) and query.list_id != (
            INBOX if parent.list_id is None else str(parent.list_id)
        ):
            await check_named(runner, user_id, query)
            return Page([], None)  # a parent in another list has no subtasks in this one
    if only == "every list" and isinstance(query.list_id, str):
        only = None if query.list_id == INBOX else uuid.UUID(query.list_id)
    plan = runner.all_planned_per_value if any(FILTERS[name].by_value for name in filters) else runner.all
    wanted = query.limit + 1  # one row past the page tells whether another follows
    rows: list[tuple[str, uuid.UUID | None, Any]] = []
    async for list_position, list_id in _lists(runner, user_id, only, start):
        statement = _range_query(
            list_id is None, tuple(filters), start is not None and start.list_id == list_id, under
        )
        found = await plan(
            statement,
            **values,
            list_id=list_id,
            after_key=None if start is None else start.key,
            limit=wanted - len(rows),
        )
        rows += [(list_position, list_id, row) for row in found]
        if len(rows) >= wanted:
            break
    items = [TaskRead(*row[:-1]) for _, _, row in rows[: query.limit]]
    if not items:
        await check_named(runner, user_id, query)
    if len(rows) <= query.limit:
        return Page(items, None)
    list_position, list_id, last = rows[query.limit - 1]
    return Page(items, _encode_position(TreePosition(list_position, list_id, last["tree_key"])))


async def _parent(runner: Runner, user_id: str, parent_id: uuid.UUID) -> nodes.Node:
    row = await runner.one(nodes.NODE, user_id=user_id, node_id=parent_id)
    if row is None:
        raise invalid("parent_id", PARENT_FILTER_RULE)
    return nodes.Node.from_row(row)


async def _lists(
    runner: Runner, user_id: str, only: uuid.UUID | str | None, start: TreePosition | None
) -> AsyncIterator[tuple[str, uuid.UUID | None]]:
    """The lists a page reads, in order, from the one it starts in: (place, id), the Inbox as ("", None)."""
    if not isinstance(only, str):  # one list (or the Inbox) only
        yield "", only
        return
    if start is None or start.list_id is None:
        yield "", None
    after = "" if start is None else start.list_position
    if start is not None and start.list_id is not None:
        yield start.list_position, start.list_id
    for row in await runner.all(_LISTS_AFTER, user_id=user_id, after=after):
        if row["task_count"] > 0:
            yield row["position"], row["id"]
