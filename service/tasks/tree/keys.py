"""Tree keys: a task's place in its list's depth-first order, as one string that sorts as bytes.

A task's tree key is its ancestry (its parent's tree key and a '.', empty at the top level) and
then its position among its siblings. Positions never contain '.', which sorts before every
character they use, so a task's subtree is exactly the keys that start with its key and a '.',
and comes before its next sibling: byte order of the keys in one list is tree order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.sql import ColumnElement, func
from sqlalchemy.sql.expression import literal_column

from service.db.statements import param
from service.tasks.columns import tasks
from service.tasks.fields import MAX_LEVELS

SEPARATOR = "."
# The character after '.': every key of a subtree sorts below key + this.
PAST_SEPARATOR = "/"

# The indexed expression (sql/008's tasks_user_tree_key): a query must spell it the same way.
indexed_key: ColumnElement[str] = func.coalesce(tasks.c.ancestry, literal_column("''")).op("||")(
    tasks.c.position
)


def tree_order(*, descending: bool = False) -> list[ColumnElement[Any]]:
    """ORDER BY for tree order within one list. The list comes first although it is fixed: the
    planner counts `list_id IS NULL` (the Inbox) as no equality, and only an order that starts
    with it matches the index's (user_id, list_id, key) without a sort step."""
    columns = (tasks.c.list_id, indexed_key)
    return [c.desc() if descending else c.asc() for c in columns]


def tree_key(ancestry: str | None, position: str) -> str:
    return (ancestry or "") + position


def level(ancestry: str | None) -> int:
    """1 at the top level, one more per ancestor."""
    return 1 if ancestry is None else ancestry.count(SEPARATOR) + 1


def ancestor_keys(ancestry: str | None) -> list[str]:
    """The tree keys of a task's ancestors, root first."""
    if ancestry is None:
        return []
    parts = ancestry.rstrip(SEPARATOR).split(SEPARATOR)
    return [SEPARATOR.join(parts[: n + 1]) for n in range(len(parts))]


def child_ancestry(key: str) -> str:
    """The ancestry of a task's children, from the task's tree key."""
    return key + SEPARATOR


def fits(parent_level: int, height: int) -> bool:
    """Whether a subtree `height` levels tall fits under a parent at `parent_level` (0: top level)."""
    return parent_level + height <= MAX_LEVELS


def in_list(inbox: bool, name: str = "list_id") -> ColumnElement[bool]:
    """The condition for one list's rows; the Inbox is `IS NULL`, which the tree index serves too."""
    return tasks.c.list_id.is_(None) if inbox else tasks.c.list_id == param(name, tasks.c.list_id.type)


def past(key: Any) -> ColumnElement[str]:
    """The least key above every key of the subtree of `key`."""
    above: ColumnElement[str] = key.op("||")(literal_column(f"'{PAST_SEPARATOR}'"))
    return above


def subtree(key: Any, *, inclusive: bool = True) -> ColumnElement[bool]:
    """The task with tree key `key` (unless not `inclusive`) and every task under it: one index range.

    Between `key` and `key + '/'` lie `key` itself and the keys that continue it with '.': a
    sibling's key that continues it (a longer position) goes on with a digit, which sorts after '/'.
    """
    lower: ColumnElement[bool] = indexed_key >= key if inclusive else indexed_key > key
    return lower & (indexed_key < past(key))


def depth_of(column: Any) -> ColumnElement[int]:
    """A row's level minus one, from its ancestry: how many '.' it holds."""
    dots = func.length(column) - func.length(
        func.replace(column, literal_column(f"'{SEPARATOR}'"), literal_column("''"))
    )
    return func.coalesce(dots, literal_column("0"))
