"""service/tasks/ids.py: UUIDv7 task ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from service.tasks.ids import uuid7


def test_uuid7_carries_the_millisecond_and_sorts_by_it() -> None:
    at = datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=UTC)
    ids = [uuid7(at + timedelta(milliseconds=i)) for i in range(50)]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert ids == sorted(ids)
    assert ids[0].int >> 80 == int(at.timestamp() * 1000)
    assert len({uuid7(at) for _ in range(1000)}) == 1000  # 74 random bits within one millisecond
