"""Example values for the task operations' documentation: instances of the Structs the handlers encode.

A test checks each against the document's own schema, and sends the request examples to the API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from service.tasks.schemas import (
    TagCount,
    TaskComplete,
    TaskCreate,
    TaskMove,
    TaskRead,
    TaskStats,
    TaskUpdate,
)

TASK = TaskRead(
    id=uuid.UUID("01934f2e-7c1a-7b3e-9f2d-5a6b7c8d9e0f"),
    title="Buy milk",
    description="2 litres, semi-skimmed",
    completed=False,
    user_id="user_2xKq9mZ",
    created_at=datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
    updated_at=datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
    due_at=datetime(2026, 1, 20, 17, 0, tzinfo=UTC),
    priority="medium",
    tags=["groceries"],
    completed_at=None,
    position="7fffffffffff",
)
RENAMED = msgspec.structs.replace(
    TASK, title="Buy oat milk", updated_at=datetime(2026, 1, 15, 10, 5, tzinfo=UTC)
)
DONE = msgspec.structs.replace(
    TASK,
    completed=True,
    updated_at=datetime(2026, 1, 15, 18, 0, tzinfo=UTC),
    completed_at=datetime(2026, 1, 15, 18, 0, tzinfo=UTC),
)
MOVED = msgspec.structs.replace(
    TASK, position="7fffffffffffV", updated_at=datetime(2026, 1, 15, 11, 0, tzinfo=UTC)
)
STATS = TaskStats(
    total=12,
    active=9,
    completed=3,
    overdue=2,
    tags=[TagCount("work", 5), TagCount("groceries", 2)],
)
CREATE = TaskCreate(
    title="Buy milk",
    description="2 litres, semi-skimmed",
    due_at=datetime(2026, 1, 20, 17, 0, tzinfo=UTC),
    priority="medium",
    tags=["groceries"],
)
RENAME = TaskUpdate(title="Buy oat milk")
COMPLETE = TaskComplete(completed=True)
MOVE = TaskMove(after=uuid.UUID("01934f2e-6b00-7a11-8c3d-1e2f3a4b5c6d"))
