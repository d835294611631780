"""service/tasks/listing/cursors.py: the cursor codec, sealed to its user, sort and filters."""

from __future__ import annotations

import pytest

from service.tasks.listing.cursors import CursorBinding, CursorCodec
from service.tasks.schemas import ListQuery
from service.web.errors import ValidationFailed


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
