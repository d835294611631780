"""The listing: its sorts and filters, one statement compiled for each combination, and one page of it.

Keyset pagination: a page's position is its last task's sort key values; the next page is the rows
strictly past them, which an index on (user_id, key..., id) serves without a sort step.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args

import msgspec
from msgspec import UNSET
from sqlalchemy import Boolean, Integer, Text, or_, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import ColumnElement, func, select
from sqlalchemy.sql.expression import literal_column

from service.db.statements import Query, Runner, param
from service.lists.columns import lists
from service.tasks.columns import READ_COLUMNS, USER, tasks
from service.tasks.fields import CURSOR_RULE, INBOX, LIST_FILTER_RULE, PARENT_FILTER_RULE, TOP_LEVEL
from service.tasks.schemas import ListQuery, SortName, TaskRead
from service.tasks.tree import keys, nodes
from service.web.errors import invalid

_FIELD_TYPES = {f.name: f.type for f in msgspec.structs.fields(TaskRead)}


@dataclass(frozen=True, slots=True)
class SortKey:
    """One term of an order: the expression rows are compared by, and the TaskRead field holding it.

    A nullable field names what a missing value sorts as (`missing`, SQL): the column and the
    cursor's value are both compared through `coalesce(…, missing)`, as the index is built.
    """

    column: ColumnElement[Any]
    field: str
    missing: str | None = None

    def expression(self) -> ColumnElement[Any]:
        return (
            self.column if self.missing is None else func.coalesce(self.column, literal_column(self.missing))
        )

    def value(self, index: int) -> ColumnElement[Any]:
        value = param(f"after_{index}", self.column.type)
        return value if self.missing is None else func.coalesce(value, literal_column(self.missing))


@dataclass(frozen=True, slots=True)
class Sort:
    """One order of the listing: its keys, most significant first, then id, all one direction.

    A page's position is the last task's key values; the next page is the rows strictly past it.
    A sort whose keys are unique by themselves (`position`) needs no id to break ties.
    """

    name: str
    keys: tuple[SortKey, ...]
    descending: bool
    by_id: bool = True

    @property
    def _all_keys(self) -> tuple[SortKey, ...]:
        return (*self.keys, SortKey(tasks.c.id, "id")) if self.by_id else self.keys

    def order(self) -> list[ColumnElement[Any]]:
        return [k.expression().desc() if self.descending else k.expression().asc() for k in self._all_keys]

    def after(self) -> ColumnElement[bool]:
        """Rows strictly past the position (`after_0`, `after_1`, ...) in this order: the keyset condition."""
        keys = self._all_keys
        here = tuple_(*(k.expression() for k in keys))
        there = tuple_(*(k.value(i) for i, k in enumerate(keys)))
        return here < there if self.descending else here > there

    def position(self, task: TaskRead) -> bytes:
        return msgspec.json.encode([getattr(task, k.field) for k in self._all_keys])

    def after_values(self, position: bytes) -> dict[str, Any]:
        """The keyset parameters for a position this sort wrote; ValueError if it did not."""
        kind = tuple.__class_getitem__(tuple(_FIELD_TYPES[k.field] for k in self._all_keys))
        try:
            values = msgspec.json.decode(position, type=kind)
        except msgspec.DecodeError as exc:
            raise ValueError(str(exc)) from None
        return {f"after_{i}": value for i, value in enumerate(values)}


def _sorts(*keys: tuple[str, tuple[SortKey, ...]]) -> dict[str, Sort]:
    return {f"{sign}{name}": Sort(f"{sign}{name}", k, sign == "-") for name, k in keys for sign in ("", "-")}


SORTS: dict[str, Sort] = {
    **_sorts(
        ("created_at", (SortKey(tasks.c.created_at, "created_at"),)),
        ("updated_at", (SortKey(tasks.c.updated_at, "updated_at"),)),
        # Code-point order, as the contract decides.
        ("title", (SortKey(tasks.c.title.collate("C"), "title"),)),
        # The enum's order is the rank's: none, low, medium, high.
        ("priority", (SortKey(tasks.c.priority, "priority"), SortKey(tasks.c.created_at, "created_at"))),
    ),
    # Tasks without a due date come last both ways: as +infinity going up, as -infinity going down.
    "due_at": Sort("due_at", (SortKey(tasks.c.due_at, "due_at", "'infinity'::timestamptz"),), False),
    "-due_at": Sort("-due_at", (SortKey(tasks.c.due_at, "due_at", "'-infinity'::timestamptz"),), True),
}
# Tree order (`position`) walks lists one after another: listing/tree.py.
TREE_SORT = "position"
if {*SORTS, TREE_SORT} != set(get_args(SortName)):
    raise RuntimeError("schemas.SortName and SORTS must list the same sorts")


def like_pattern(text: str) -> str:
    """A literal, case-insensitive substring pattern: %, _ and \\ match themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class Filter:
    """A listing parameter that narrows the rows: its condition, and how its value binds.

    `by_value`: the best plan depends on the value (a rare text wants the trigram index, a common
    one the user's ordered index), so the statement is planned for each value, never generically.
    """

    condition: ColumnElement[bool]
    bind: Callable[[Any], Mapping[str, Any]]
    by_value: bool = False


_PATTERN = param("pattern", Text)
# Keyed by ListQuery field: a field given (not UNSET) adds its condition.
FILTERS: dict[str, Filter] = {
    "completed": Filter(
        tasks.c.completed == param("completed", Boolean), lambda v: {"completed": v == "true"}
    ),
    "q": Filter(
        or_(tasks.c.title.ilike(_PATTERN, escape="\\"), tasks.c.description.ilike(_PATTERN, escape="\\")),
        lambda v: {"pattern": like_pattern(v)},
        by_value=True,
    ),
    "priority": Filter(
        tasks.c.priority == param("priority", tasks.c.priority.type), lambda v: {"priority": v}
    ),
    # ListQuery folds the tags as the store folds tag_keys; every one must be there.
    "tag": Filter(tasks.c.tag_keys.contains(param("tags", ARRAY(Text))), lambda v: {"tags": v}),
    # A null due_at compares as unknown: a task without one never matches.
    "due_min": Filter(tasks.c.due_at >= param("due_min", tasks.c.due_at.type), lambda v: {"due_min": v}),
    "due_max": Filter(tasks.c.due_at < param("due_max", tasks.c.due_at.type), lambda v: {"due_max": v}),
    "list_id": Filter(
        tasks.c.list_id == param("list_id", tasks.c.list_id.type), lambda v: {"list_id": uuid.UUID(v)}
    ),
    "parent_id": Filter(
        tasks.c.parent_id == param("parent_id", tasks.c.parent_id.type), lambda v: {"parent_id": uuid.UUID(v)}
    ),
}
# The words a filter takes besides an id: the Inbox, the top level. Keyed "name=value" in FILTERS.
FILTERS[f"list_id={INBOX}"] = Filter(tasks.c.list_id.is_(None), lambda v: {})
FILTERS[f"parent_id={TOP_LEVEL}"] = Filter(tasks.c.parent_id.is_(None), lambda v: {})
# A parent's children, in any sort: read from the parent's range of the tree index (its subtree,
# a few rows), not by filtering every task of the user in the sort's own index.
for _inbox, _where in ((True, "in the Inbox"), (False, "in a list")):
    FILTERS[f"parent_id {_where}"] = Filter(
        (tasks.c.parent_id == param("parent_id", tasks.c.parent_id.type))
        & keys.in_list(_inbox, "parent_list")
        & keys.subtree(param("parent_key", Text), inclusive=False),
        lambda v: {"parent_id": uuid.UUID(v)},
    )
_WORDS = {f"list_id={INBOX}", f"parent_id={TOP_LEVEL}", "parent_id in the Inbox", "parent_id in a list"}
# Every other query parameter shapes the page rather than the rows.
if set(ListQuery.__struct_fields__) != {*FILTERS.keys() - _WORDS, "sort", "limit", "cursor"}:
    raise RuntimeError("every ListQuery field but sort, limit and cursor needs its Filter")


@functools.cache
def list_query(sort: str, filters: tuple[str, ...], after: bool) -> Query:
    """The listing statement for one sort, a set of filters and first/next page; compiled once each."""
    conditions: list[ColumnElement[bool]] = [tasks.c.user_id == USER]
    conditions += [FILTERS[name].condition for name in filters]
    if after:
        conditions.append(SORTS[sort].after())
    statement = (
        select(*READ_COLUMNS).where(*conditions).order_by(*SORTS[sort].order()).limit(param("limit", Integer))
    )
    return Query.of(statement)


def chosen(query: ListQuery, *, leave_out: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """The filters `query` gives (by FILTERS key) with their values, in FILTERS order."""
    given = []
    for name in ListQuery.__struct_fields__:
        value = getattr(query, name)
        if name in leave_out or value is UNSET or name not in FILTERS:
            continue
        word = f"{name}={value}"
        given.append((word if word in FILTERS else name, value))
    return given


def bind(given: list[tuple[str, Any]]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in given:
        values.update(FILTERS[name].bind(value))
    return values


class Page(msgspec.Struct, frozen=True):
    """One page of a listing, and the position after its last task when more follow."""

    items: list[TaskRead]
    next: bytes | None


async def page(runner: Runner, user_id: str, query: ListQuery, after: bytes | None = None) -> Page:
    """One page of `query`, starting past the position `after` (from an earlier Page.next)."""
    sort = SORTS[query.sort]
    given = chosen(query)
    values: dict[str, Any] = {"user_id": user_id, "limit": query.limit + 1}
    if isinstance(query.parent_id, str) and query.parent_id != TOP_LEVEL:
        row = await runner.one(nodes.NODE, user_id=user_id, node_id=uuid.UUID(query.parent_id))
        if row is None:
            raise invalid("parent_id", PARENT_FILTER_RULE)
        parent = nodes.Node.from_row(row)
        where = "in the Inbox" if parent.list_id is None else "in a list"
        given = [(f"parent_id {where}" if name == "parent_id" else name, value) for name, value in given]
        values.update(parent_key=parent.key, parent_list=parent.list_id)
    filters = tuple(name for name, _ in given)
    values.update(bind(given))
    if after is not None:
        try:
            values.update(sort.after_values(after))
        except ValueError:
            raise invalid("cursor", CURSOR_RULE) from None
    # One row past the page tells whether another page follows, without a count.
    statement = list_query(query.sort, filters, after is not None)
    if any(FILTERS[name].by_value for name in filters):
        rows = await runner.all_planned_per_value(statement, **values)
    else:
        rows = await runner.all(statement, **values)
    items = [TaskRead(*row) for row in rows[: query.limit]]
    if not items:
        await check_named(runner, user_id, query)
    more = len(rows) > query.limit
    return Page(items, sort.position(items[-1]) if more else None)


_LIST_FOUND = Query.of(
    select(lists.c.id).where(lists.c.user_id == USER, lists.c.id == param("list_id", lists.c.id.type))
)
_TASK_FOUND = Query.of(
    select(tasks.c.id).where(tasks.c.user_id == USER, tasks.c.id == param("task_id", tasks.c.id.type))
)


async def check_named(runner: Runner, user_id: str, query: ListQuery) -> None:
    """An empty page for a list or parent that is not the user's is a 422 naming the parameter."""
    if (
        isinstance(query.list_id, str)
        and query.list_id != INBOX
        and await runner.one(_LIST_FOUND, user_id=user_id, list_id=uuid.UUID(query.list_id)) is None
    ):
        raise invalid("list_id", LIST_FILTER_RULE)
    if (
        isinstance(query.parent_id, str)
        and query.parent_id != TOP_LEVEL
        and await runner.one(_TASK_FOUND, user_id=user_id, task_id=uuid.UUID(query.parent_id)) is None
    ):
        raise invalid("parent_id", PARENT_FILTER_RULE)
