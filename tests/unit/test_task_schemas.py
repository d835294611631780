"""service/tasks/schemas.py: what decoding a body into TaskCreate does to it."""

from __future__ import annotations

import msgspec

from service.tasks.schemas import TaskCreate


def test_create_trims_the_title_as_its_pattern_allows() -> None:
    assert msgspec.json.decode(b'{"title": "\\u3000 x \\n"}', type=TaskCreate).title == "x"
