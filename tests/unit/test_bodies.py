"""service/web/bodies.py: reading a query string into its struct, and the rules its refusals say."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from service.tasks.listing.query import SORTS, TREE_SORT
from service.tasks.schemas import ListQuery, TaskCreate
from service.web.bodies import read_query, rules
from service.web.errors import ValidationFailed


def _request(query: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query, "headers": []})


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", ListQuery()),
        (b"limit=7&sort=title&unknown=1&unknown=2", ListQuery(limit=7, sort="title")),
        (b"completed=false&q=a%20b&cursor=x", ListQuery(completed="false", q="a b", cursor="x")),
    ],
)
def test_read_query(query: bytes, expected: ListQuery) -> None:
    assert read_query(_request(query), ListQuery) == expected


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        (b"limit=1e2", "limit", "must be an integer from 1 to 200"),
        (b"limit=0", "limit", "must be an integer from 1 to 200"),
        (b"limit=5&limit=5", "limit", "must be given at most once"),
        (b"q=", "q", "must not be empty"),
        (b"completed=True", "completed", "must be true or false"),
        (b"sort=due", "sort", "must be one of " + ", ".join(sorted({*SORTS, TREE_SORT}))),
    ],
)
def test_read_query_refusals_name_the_rule(query: bytes, field: str, message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        read_query(_request(query), ListQuery)
    assert [(d.field, d.message) for d in caught.value.details] == [(field, message)]


def test_rules_come_from_the_meta() -> None:
    found = rules(TaskCreate)
    assert found["title"] == "must be 1-200 characters after trimming white space, without NUL"
    assert found["description"] == "must be at most 2000 characters, without NUL"
    assert rules(ListQuery)["limit"] == "must be an integer from 1 to 200"
    assert (
        found["due_at"]
        == "must be an RFC 3339 timestamp with an offset (Z or +hh:mm), in the years 1000 to 9998"
    )
    assert found["priority"] == "must be one of none, low, medium, high"
    assert (
        found["tags"]
        == "must be at most 20 tags, each 1-32 characters after trimming white space, without NUL"
    )
