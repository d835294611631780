"""The cascades that keep the tree's invariant: a completed task never has an active descendant.

Each is one statement beside the write that causes it (data-modifying CTEs on disjoint rows), run
after `nodes.lock_task`; every task it touches gets its own version, `updated_at`, `completed_at`
and change number (the triggers of sql/004 and sql/006 see each row).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Boolean, Text
from sqlalchemy import any_ as sql_any
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import Update, delete, func, select, update
from sqlalchemy.sql.expression import literal_column, null
from sqlalchemy.sql.selectable import CTE

from service.db.statements import Query, param
from service.tasks.columns import BUMP, RETURNED, USER, tasks, users
from service.tasks.tree import keys

_ANCESTORS = param("ancestors", ARRAY(Text))


def _completing_below(inbox: bool) -> Update:
    """Complete the active tasks under the task whose tree key is `key`, when `down`."""
    return (
        update(tasks)
        .where(
            param("down", Boolean),
            tasks.c.user_id == USER,
            keys.in_list(inbox),
            keys.subtree(param("key", Text), inclusive=False),
            ~tasks.c.completed,
        )
        .values(completed=literal_column("true"), completed_at=param("now"), **BUMP)
    )


def reopening(inbox: bool, when: Any = None, list_name: str = "list_id") -> Update:
    """Reopen the completed tasks among `ancestors` (tree keys), when `when` (a parameter) holds."""
    conditions = [] if when is None else [when]
    return (
        update(tasks)
        .where(
            *conditions,
            tasks.c.user_id == USER,
            keys.in_list(inbox, list_name),
            keys.indexed_key == sql_any(_ANCESTORS),
            tasks.c.completed,
        )
        .values(completed=literal_column("false"), completed_at=null(), **BUMP)
    )


@functools.cache
def cascading(target: Update, inbox: bool) -> Query:
    """`target` (an UPDATE of one task, returning RETURNED) with the completion's cascade beside it.

    `down` completes the task's active descendants; `up` reopens its completed ancestors.
    """
    written = target.returning(*RETURNED).cte("target")
    below = _completing_below(inbox).returning(tasks.c.id).cte("completed_below")
    above = reopening(inbox, param("up", Boolean)).returning(tasks.c.id).cte("reopened_above")
    return Query.of(select(*(written.c[c.name] for c in RETURNED)).add_cte(below, above))


REOPEN = {inbox: Query.of(reopening(inbox)) for inbox in (False, True)}


def deleting(*conditions: Any, returning: tuple[Any, ...] = (tasks.c.id,)) -> tuple[CTE, Any, CTE]:
    """Delete the user's tasks that meet `conditions`: the deleted rows, their count, and the
    user's task count lowered by exactly that many (a concurrent delete of a row finds none)."""
    gone = delete(tasks).where(tasks.c.user_id == USER, *conditions).returning(*returning).cte("gone")
    count = select(func.count()).select_from(gone).scalar_subquery()
    uncounted = (
        update(users)
        .where(users.c.id == USER, count > literal_column("0"))
        .values(task_count=users.c.task_count - count)
        .cte("uncounted")
    )
    return gone, count, uncounted


def _deleting_subtree(inbox: bool) -> Query:
    """Delete a task and everything under it; the task as it was and how many subtasks went."""
    gone, count, uncounted = deleting(
        keys.in_list(inbox), keys.subtree(param("key", Text)), returning=RETURNED
    )
    return Query.of(
        select(*(gone.c[c.name] for c in RETURNED), (count - literal_column("1")).label("subtasks"))
        .where(gone.c.id == param("task_id", tasks.c.id.type))
        .add_cte(uncounted)
    )


DELETE_SUBTREE = {inbox: _deleting_subtree(inbox) for inbox in (False, True)}
