"""GET .../tasks/stats: the user's tasks counted, or one list's, in one statement.

The user's totals and each list's come from counters the triggers keep (sql/006, sql/008): a
heavy user's stats never read their tasks one by one. Overdue depends on the clock, so it is
counted from the index of active tasks with a due date. One list's tags are counted from its
active tasks (a list holds a share of the user's; the user-wide tags have their own counters).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Integer, Text, cast, column
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.sql import ColumnElement, Subquery, func, select
from sqlalchemy.sql.expression import literal_column

from service.db.statements import Query, Runner, param
from service.lists.columns import lists
from service.tasks.columns import USER, tag_counts, tasks, users
from service.tasks.fields import INBOX, LIST_FILTER_RULE, STATS_TAGS_MAX
from service.tasks.schemas import ListCount, TagCount, TaskStats
from service.tasks.tree.keys import in_list
from service.web.errors import invalid

_ZERO: ColumnElement[int] = literal_column("0")
_NOW = param("now", tasks.c.due_at.type)


def _tag_totals(spellings: Subquery) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """Tags counted by their folded form, each shown in the spelling most tasks use (ties: the
    first by code point): (names, counts) as two arrays, most used first."""
    shown = func.array_agg(aggregate_order_by(spellings.c.tag, spellings.c.tasks.desc(), spellings.c.tag))[1]
    totals = (
        select(shown.label("name"), cast(func.sum(spellings.c.tasks), Integer).label("count"))
        .group_by(spellings.c.tag_key)
        .order_by(func.sum(spellings.c.tasks).desc(), shown)
        .limit(literal_column(str(STATS_TAGS_MAX)))
        # A CTE, read by both arrays below: PostgreSQL computes it once (a subquery, twice).
        .cte("tag_totals")
    )
    order = (totals.c.count.desc(), totals.c.name.collate("C"))
    return (
        select(func.array_agg(aggregate_order_by(totals.c.name, *order))).scalar_subquery(),
        select(func.array_agg(aggregate_order_by(totals.c.count, *order))).scalar_subquery(),
    )


def _user_total(column: Any) -> ColumnElement[int]:
    return func.coalesce(select(column).where(users.c.id == USER).scalar_subquery(), _ZERO)


def _lists_total(column: Any) -> ColumnElement[int]:
    return func.coalesce(select(func.sum(column)).where(lists.c.user_id == USER).scalar_subquery(), _ZERO)


def _list_total(column: Any) -> ColumnElement[int]:
    return select(column).where(lists.c.user_id == USER, lists.c.id == param("list_id")).scalar_subquery()


def _every_list(column: Any) -> ColumnElement[Any]:
    return (
        select(func.array_agg(aggregate_order_by(column, lists.c.position)))
        .where(lists.c.user_id == USER)
        .scalar_subquery()
    )


def _overdue(*conditions: ColumnElement[bool]) -> ColumnElement[int]:
    return (
        select(func.count())
        .where(tasks.c.user_id == USER, ~tasks.c.completed, tasks.c.due_at < _NOW, *conditions)
        .scalar_subquery()
    )


_user_spellings = (
    select(tag_counts.c.tag_key, tag_counts.c.tag, tag_counts.c.tasks)
    .where(tag_counts.c.user_id == USER, tag_counts.c.tasks > _ZERO)
    .subquery("spellings")
)
_EVERY_LIST = (
    _every_list(lists.c.id).label("list_ids"),
    _every_list(lists.c.task_count).label("list_totals"),
    _every_list(lists.c.completed_count).label("list_completed"),
    _lists_total(lists.c.task_count).label("listed_total"),
    _lists_total(lists.c.completed_count).label("listed_completed"),
    _user_total(users.c.task_count).label("user_total"),
    _user_total(users.c.completed_count).label("user_completed"),
)
_user_names, _user_counts = _tag_totals(_user_spellings)
STATS = Query.of(
    select(
        _user_total(users.c.task_count).label("total"),
        _user_total(users.c.completed_count).label("completed"),
        _overdue().label("overdue"),
        _user_names.label("tag_names"),
        _user_counts.label("tag_counts"),
        *_EVERY_LIST,
    )
)


def _list_stats(inbox: bool) -> Query:
    """One list's stats (the Inbox's: the user's totals less every list's), with every list's counts."""
    tag = (
        func.unnest(tasks.c.tags, tasks.c.tag_keys)
        .table_valued(column("tag", Text), column("tag_key", Text))
        .render_derived(name="tag")
    )
    spellings = (
        select(tag.c.tag_key, tag.c.tag, func.count().label("tasks"))
        .select_from(tasks, tag)
        .where(tasks.c.user_id == USER, in_list(inbox), ~tasks.c.completed)
        .group_by(tag.c.tag_key, tag.c.tag)
        .subquery("spellings")
    )
    names, counts = _tag_totals(spellings)
    if inbox:
        total = _user_total(users.c.task_count) - _lists_total(lists.c.task_count)
        completed = _user_total(users.c.completed_count) - _lists_total(lists.c.completed_count)
    else:
        total, completed = _list_total(lists.c.task_count), _list_total(lists.c.completed_count)
    return Query.of(
        select(
            total.label("total"),
            completed.label("completed"),
            _overdue(in_list(inbox)).label("overdue"),
            names.label("tag_names"),
            counts.label("tag_counts"),
            *_EVERY_LIST,
        )
    )


LIST_STATS = {inbox: _list_stats(inbox) for inbox in (False, True)}


async def stats(runner: Runner, user_id: str, now: Any, list_filter: str | None) -> TaskStats:
    """The user's stats, or (`list_filter`: a list id or "inbox") one list's; 422 for another's list."""
    if list_filter is None:
        row = await runner.one(STATS, user_id=user_id, now=now)
    elif list_filter == INBOX:
        row = await runner.one(LIST_STATS[True], user_id=user_id, now=now)
    else:
        row = await runner.one(LIST_STATS[False], user_id=user_id, now=now, list_id=uuid.UUID(list_filter))
    if row is None:  # a SELECT without FROM returns its one row
        raise RuntimeError("the stats query returned no row")
    if row["total"] is None:  # no such list of theirs
        raise invalid("list_id", LIST_FILTER_RULE)
    names, counts = row["tag_names"] or [], row["tag_counts"] or []
    list_ids = row["list_ids"] or []
    inbox_total = row["user_total"] - row["listed_total"]
    inbox_done = row["user_completed"] - row["listed_completed"]
    counted = [ListCount(None, inbox_total - inbox_done, inbox_done)]
    counted += [
        ListCount(list_id, total - done, done)
        for list_id, total, done in zip(
            list_ids, row["list_totals"] or [], row["list_completed"] or [], strict=True
        )
    ]
    return TaskStats(
        total=row["total"],
        active=row["total"] - row["completed"],
        completed=row["completed"],
        overdue=row["overdue"],
        tags=[TagCount(name, count) for name, count in zip(names, counts, strict=True)],
        lists=counted,
    )
