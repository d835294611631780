"""What the task routes' OpenAPI operations share: example values, parameters, headers, links.

The examples are instances of the Structs the handlers encode; a test checks each against the
document's own schema, and sends the request examples to the API.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import msgspec

from service.openapi.operation import header, if_match, parameter
from service.tasks.idempotency import IDEMPOTENCY_KEY_PATTERN
from service.tasks.schemas import (
    ListCount,
    ListQuery,
    TagCount,
    TaskComplete,
    TaskCreate,
    TaskMove,
    TaskRead,
    TaskStats,
    TaskUpdate,
)
from service.web.bodies import rules
from service.web.schemas import FieldError

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
    list_id=uuid.UUID("01934f2d-1a2b-7c3d-8e4f-5a6b7c8d9e0f"),
    parent_id=None,
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
    lists=[ListCount(None, 4, 1), ListCount(uuid.UUID("01934f2d-1a2b-7c3d-8e4f-5a6b7c8d9e0f"), 5, 2)],
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

# What the documentation adds to the route table.
# Exactly one of the partial update's fields at least; exactly one of before and after.
NonEmptyTaskUpdate = Annotated[TaskUpdate, msgspec.Meta(extra_json_schema={"minProperties": 1})]
OneAnchorMove = Annotated[TaskMove, msgspec.Meta(extra_json_schema={"minProperties": 1, "maxProperties": 1})]
ETAG = header("Strong ETag of the task's current version")
TASK_HEADERS = {"ETag": ETAG}
BAD_TITLE = FieldError("title", rules(TaskCreate)["title"])
BAD_LIMIT = FieldError("limit", rules(ListQuery)["limit"])
IF_MATCH = if_match("task")
IDEMPOTENCY_KEY = parameter(
    "Idempotency-Key",
    "header",
    {"type": "string", "pattern": f"^{IDEMPOTENCY_KEY_PATTERN.pattern}$"},
    "Retries with the same key and body within 24 h replay the first 201 and create nothing",
)
TASK_LINKS = {
    f"{verb}Task": {
        "operationId": f"{verb}Task",
        "parameters": {"user_id": "$request.path.user_id", "task_id": "$response.body#/data/id"},
    }
    for verb in ("get", "replace", "update", "complete", "move", "delete")
}
