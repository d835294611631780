"""service/tasks/listing/query.py: each sort's position and keyset values, LIKE escaping, statements compiled once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from service.tasks.documentation import TASK as EXAMPLE_TASK
from service.tasks.listing.query import SORTS, like_pattern, list_query

A = uuid.UUID("01934f2e-7c1a-7b3e-9f2d-5a6b7c8d9e0f")


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


def test_each_listing_is_compiled_once() -> None:
    assert list_query("-created_at", ("q",), True) is list_query("-created_at", ("q",), True)
