"""The rules of a list's fields, each stated once in a `Meta`, as a task's are (service/tasks/fields.py)."""

from __future__ import annotations

import uuid
from typing import Annotated

from msgspec import Meta

from service.tasks.fields import trimmed_pattern

NAME_MAX = 100
# A title's machinery with a list's bound: the same white space is trimmed, NUL is refused alike.
NAME_PATTERN = trimmed_pattern(NAME_MAX)
NAME_RULE = f"must be 1-{NAME_MAX} characters after trimming white space, without NUL"
LIST_ANCHOR_RULE = "must be the id of another of your lists"

ListName = Annotated[
    str,
    Meta(
        min_length=1,
        pattern=NAME_PATTERN,
        description=f"1-{NAME_MAX} characters after trimming white space; no NUL; stored trimmed",
        examples=["Groceries"],
        extra={"rule": NAME_RULE},
    ),
]
ListId = Annotated[uuid.UUID, Meta(description="UUIDv7, lower case")]
ListAnchor = Annotated[
    uuid.UUID, Meta(description="Another of the user's lists", extra={"rule": LIST_ANCHOR_RULE})
]
