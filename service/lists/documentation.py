"""What the list routes' OpenAPI operations share: example values, parameters, headers, links.

The examples are instances of the Structs the handlers encode, so the document's tests check
them against its own schema, as they do the tasks'.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import msgspec

from service.lists.schemas import ListCreate, ListMove, ListRead, ListUpdate
from service.openapi.operation import header, if_match, parameter
from service.web.bodies import rules
from service.web.schemas import FieldError

LIST = ListRead(
    id=uuid.UUID("01934f2e-8d2b-7c4f-a1e3-6b7c8d9e0f1a"),
    name="Groceries",
    position="800000000000",
    created_at=datetime(2026, 1, 15, 9, 0, tzinfo=UTC),
    updated_at=datetime(2026, 1, 15, 9, 0, tzinfo=UTC),
)
RENAMED = msgspec.structs.replace(LIST, name="Shopping", updated_at=datetime(2026, 1, 15, 10, 5, tzinfo=UTC))
MOVED = msgspec.structs.replace(
    LIST, position="800000000001V", updated_at=datetime(2026, 1, 15, 11, 0, tzinfo=UTC)
)
CREATE = ListCreate(name="Groceries")
RENAME = ListUpdate(name="Shopping")
MOVE = ListMove(after=uuid.UUID("01934f2e-6b00-7a11-8c3d-1e2f3a4b5c6d"))

# Exactly one of before and after: what __post_init__ checks, said to JSON Schema.
OneAnchorListMove = Annotated[
    ListMove, msgspec.Meta(extra_json_schema={"minProperties": 1, "maxProperties": 1})
]
ETAG = header("Strong ETag of the list's current version")
LIST_HEADERS = {"ETag": ETAG}
BAD_NAME = FieldError("name", rules(ListCreate)["name"])
# The document builder knows {user_id} and {task_id}; a list route names its own placeholder.
LIST_ID = parameter("list_id", "path", {"type": "string", "format": "uuid"}, "The list's id (any case)")
IF_MATCH = if_match("list")
LIST_LINKS = {
    f"{verb}List": {
        "operationId": f"{verb}List",
        "parameters": {"user_id": "$request.path.user_id", "list_id": "$response.body#/data/id"},
    }
    for verb in ("get", "replace", "update", "move", "delete")
}
