"""service/tasks/store.py and listing.py: every compiled task statement is bound to its user, by name."""

from __future__ import annotations

import re
from itertools import combinations

import pytest

from service.tasks.listing.query import FILTERS, SORTS, list_query
from service.tasks.store import CREATE, CREATE_WITH_KEY, DELETE, EXISTS, GET, SET_COMPLETED, UPDATE

_ALL_LISTINGS = [
    list_query(sort, filters, after)
    for sort in SORTS
    for n in range(len(FILTERS) + 1)
    for filters in combinations(FILTERS, n)
    for after in (False, True)
]


@pytest.mark.parametrize(
    "query", [CREATE, CREATE_WITH_KEY, GET, EXISTS, UPDATE, SET_COMPLETED, DELETE, *_ALL_LISTINGS]
)
def test_every_task_statement_names_its_user(query: object) -> None:
    sql = getattr(query, "sql")  # noqa: B009 - Query objects, typed loosely for parametrize ids
    names = getattr(query, "names")  # noqa: B009
    assert "user_id" in names
    assert re.search(r"tasks\.user_id = \$\d+|\(user_id, id", sql) or "INSERT INTO tasks (user_id" in sql, sql


def test_update_binds_every_field_of_the_body_by_name() -> None:
    for name in ("title", "description", "completed"):
        assert {name, f"set_{name}"} <= set(UPDATE.names)
