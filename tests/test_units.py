"""The pure functions under the routes, without a server: If-Match parsing, ETags, the cursor codec,
LIKE escaping, UUIDv7, query parsing and the compiled statements."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from itertools import combinations

import msgspec
import pytest
from starlette.requests import Request

from service.tasks.conditional import etag, if_match_versions, none_match
from service.tasks.cursors import CursorBinding, CursorCodec
from service.tasks.examples import TASK as EXAMPLE_TASK
from service.tasks.ids import uuid7
from service.tasks.listing import FILTERS, SORTS, like_pattern, list_query
from service.tasks.schemas import ListQuery, TaskCreate
from service.tasks.store import CREATE, CREATE_WITH_KEY, DELETE, EXISTS, GET, SET_COMPLETED, UPDATE
from service.web.bodies import read_query, rules
from service.web.errors import ValidationFailed

A = uuid.UUID("01934f2e-7c1a-7b3e-9f2d-5a6b7c8d9e0f")
B = uuid.UUID("01934f2e-7c1a-7b3e-9f2d-5a6b7c8d9e10")


# --- ETags and If-Match ----------------------------------------------------------------------


def test_etags_differ_by_task_and_by_version() -> None:
    assert len({etag(A, 1), etag(B, 1), etag(A, 2)}) == 3
    assert re.fullmatch(r'"[0-9]+-[A-Za-z0-9_-]+"', etag(A, 1))


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        (None, None),
        ("*", None),
        (" * ", None),
        (etag(A, 3), [3]),
        (f'{etag(A, 3)}, "junk", {etag(A, 5)}', [3, 5]),
        (f"W/{etag(A, 3)}", []),  # strong comparison: a weak tag never matches
        (etag(B, 3), []),  # another task's tag
        ('"3"', []),  # the old, id-less form
        ('""', []),
        ('"-1-x"', []),
        (etag(A, 3)[:-1], []),  # unterminated
        ('"' + "9" * 10 + etag(A, 1)[2:], []),  # past int4
        ("\u0663" + etag(A, 1)[2:], []),  # a non-ASCII digit
    ],
)
def test_if_match_versions(header: str | None, versions: list[int] | None) -> None:
    assert if_match_versions(header, A) == versions


@pytest.mark.parametrize(
    ("header", "matches"),
    [(None, False), ("*", True), ('"x", {tag}', True), ("W/{tag}", True), ('"other"', False)],
)
def test_none_match_uses_weak_comparison(header: str | None, matches: bool) -> None:
    tag = etag(A, 1)
    assert none_match(None if header is None else header.format(tag=tag), tag) is matches


# --- cursors ---------------------------------------------------------------------------------


def test_cursor_round_trip_and_its_binding() -> None:
    codec = CursorCodec(b"k" * 32)
    binding = CursorBinding.of("alice", ListQuery(sort="title", q="milk"))
    cursor = codec.seal(b'["x","id"]', binding)
    assert codec.open(cursor, binding) == b'["x","id"]'
    # The page size and the cursor itself are not bound; everything else is.
    assert (
        codec.open(cursor, CursorBinding.of("alice", ListQuery(sort="title", q="milk", limit=7)))
        == b'["x","id"]'
    )
    for other in (
        CursorBinding.of("bob", ListQuery(sort="title", q="milk")),
        CursorBinding.of("alice", ListQuery(sort="-title", q="milk")),
        CursorBinding.of("alice", ListQuery(sort="title", q="milk", completed="true")),
        CursorBinding.of("alice", ListQuery(sort="title")),
    ):
        with pytest.raises(ValidationFailed):
            codec.open(cursor, other)
    with pytest.raises(ValidationFailed):
        CursorCodec(b"j" * 32).open(cursor, binding)


@pytest.mark.parametrize("forged", ["", ".", "garbage", "caf\u00e9.x", "a.b.c", "===.==="])
def test_cursor_garbage_is_a_422_on_cursor(forged: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        CursorCodec(b"k" * 32).open(forged, CursorBinding.of("alice", ListQuery()))
    assert caught.value.details[0].field == "cursor"


@pytest.mark.parametrize("sort", list(SORTS))
def test_positions_round_trip_through_their_sort(sort: str) -> None:
    # The document's example task, so a field added to TaskRead needs no change here.
    task = msgspec.structs.replace(
        EXAMPLE_TASK, id=A, title="Tïtle", created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    )
    values = SORTS[sort].after_values(SORTS[sort].position(task))
    # The last key is the id, but for the manual order, where the position alone is unique.
    assert values[f"after_{len(values) - 1}"] == (task.position if sort == "position" else A)
    assert values["after_0"] == getattr(task, sort.lstrip("-"))
    with pytest.raises(ValueError, match="Expected"):
        SORTS[sort].after_values(b'{"not": "a position"}')


# --- text, ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("milk", "%milk%"),
        ("100%", "%100\\%%"),
        ("a_b", "%a\\_b%"),
        ("c\\d", "%c\\\\d%"),
        ("%_\\", "%\\%\\_\\\\%"),
    ],
)
def test_like_pattern_escapes_wildcards(text: str, pattern: str) -> None:
    assert like_pattern(text) == pattern


def test_uuid7_carries_the_millisecond_and_sorts_by_it() -> None:
    at = datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=UTC)
    ids = [uuid7(at + timedelta(milliseconds=i)) for i in range(50)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids)
    assert ids[0].int >> 80 == int(at.timestamp() * 1000)
    assert len({uuid7(at) for _ in range(1000)}) == 1000  # 74 random bits within one millisecond


# --- parsing ---------------------------------------------------------------------------------


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
        (b"sort=due", "sort", "must be one of " + ", ".join(sorted(SORTS))),
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


def test_create_trims_the_title_as_its_pattern_allows() -> None:
    assert msgspec.json.decode(b'{"title": "\\u3000 x \\n"}', type=TaskCreate).title == "x"


# --- compiled statements ---------------------------------------------------------------------


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


def test_each_listing_is_compiled_once() -> None:
    assert list_query("-created_at", ("q",), True) is list_query("-created_at", ("q",), True)


def test_update_binds_every_field_of_the_body_by_name() -> None:
    for name in ("title", "description", "completed"):
        assert {name, f"set_{name}"} <= set(UPDATE.names)
