"""Every compiled statement of the service is bound to its user, by name (maintenance aside)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from itertools import combinations

import pytest

import service
from service.db.statements import Query
from service.tasks.listing import tree
from service.tasks.listing.query import FILTERS, SORTS, list_query
from service.tasks.store import UPDATE

# Statements over every user at once: the purges of expired rows.
_MAINTENANCE = {"PURGE_TOMBSTONES", "BOUND_TOMBSTONES", "PURGE_KEYS"}
# The filters that can go together (an id or the word for the same parameter, never both).
_COMPATIBLE = [f for f in FILTERS if "=" not in f]


def _module_queries() -> dict[str, Query]:
    found: dict[str, Query] = {}
    for info in pkgutil.walk_packages(service.__path__, "service."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            values = value.values() if isinstance(value, dict) else [value]
            for n, item in enumerate(values):
                if isinstance(item, Query) and name not in _MAINTENANCE:
                    found[f"{info.name}.{name}[{n}]"] = item
    return found


_LISTINGS = {
    f"list_query({sort}, {filters}, {after})": list_query(sort, filters, after)
    for sort in SORTS
    for n in (0, 1, len(_COMPATIBLE))
    for filters in combinations(_COMPATIBLE, n)
    for after in (False, True)
}
_TREE = {
    f"tree({inbox}, {filters}, {after}, {under})": tree._range_query(inbox, filters, after, under)
    for inbox in (False, True)
    for filters in ((), tuple(_COMPATIBLE[:-2]))
    for after in (False, True)
    for under in (False, True)
}
_ALL = {**_module_queries(), **_LISTINGS, **_TREE}
# A table named in a statement is always narrowed to one user: by its user_id, or the users row by id.
_TABLES = re.compile(
    r"\b(?:FROM|UPDATE|INTO|JOIN)\s+(tasks|lists|task_tombstones|tag_counts|idempotency_keys)(?:\s+AS\s+(\w+))?\b"
)


def test_the_walk_finds_the_statements() -> None:
    assert len(_module_queries()) > 40


@pytest.mark.parametrize("name", sorted(_ALL))
def test_every_statement_names_its_user(name: str) -> None:
    query = _ALL[name]
    assert "user_id" in query.names, query.sql
    for table, alias in set(_TABLES.findall(query.sql)):
        name = alias or table
        bound = re.search(rf"{name}\.user_id = (?:\$\d+|[a-z_]+\.)|INSERT INTO {table} \(user_id", query.sql)
        assert bound, f"{table} is not narrowed to the user in {query.sql}"


def test_update_binds_every_field_of_the_body_by_name() -> None:
    for name in ("title", "description", "completed"):
        assert {name, f"set_{name}"} <= set(UPDATE.names)
