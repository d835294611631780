"""The msgspec Structs every body, query, response and the OpenAPI document are made of.

Each rule lives once, in a `Meta`: msgspec enforces it while decoding, the OpenAPI document shows
it, and its `extra["rule"]` is the message a client reads when a value breaks it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

TITLE_MAX = 200
DESCRIPTION_MAX = 2000
QUERY_TEXT_MAX = 200
LIMIT_MAX = 200
LIMIT_DEFAULT = 50
CURSOR_RULE = "is not a cursor this listing gave out with these parameters"
# What "trimming" strips: ECMAScript's white space and line terminators, so the title's pattern
# below means the same to a JSON Schema validator in any language as to this service.
WHITESPACE = " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_WS = "[" + "".join(f"\\u{ord(c):04x}" for c in WHITESPACE) + "]"
_TEXT = _WS[:-1].replace("[", "[^", 1) + "\\u0000]"
# A title is its (trimmed) 1-200 characters, with any white space around them; never NUL.
TITLE_PATTERN = f"^{_WS}*{_TEXT}(?:[^\\u0000]{{0,{TITLE_MAX - 2}}}{_TEXT})?{_WS}*$"
NO_NUL_PATTERN = "^[^\\u0000]*$"

Title = Annotated[
    str,
    Meta(
        min_length=1,
        pattern=TITLE_PATTERN,
        description="1-200 characters after trimming white space; no NUL",
        examples=["Buy milk"],
        extra={"rule": f"must be 1-{TITLE_MAX} characters after trimming white space, without NUL"},
    ),
]
Description = Annotated[
    str,
    Meta(
        max_length=DESCRIPTION_MAX,
        pattern=NO_NUL_PATTERN,
        description="Up to 2,000 characters, stored as sent; no NUL",
        examples=["2 litres, semi-skimmed"],
        extra={"rule": f"must be at most {DESCRIPTION_MAX} characters, without NUL"},
    ),
]
TaskId = Annotated[uuid.UUID, Meta(description="UUIDv7, lower case")]


def trimmed(text: str) -> str:
    """A title as stored: without the white space the title's pattern allows around it."""
    return text.strip(WHITESPACE)


class TaskCreate(Struct, forbid_unknown_fields=True):
    """Body of POST /api/{user_id}/tasks."""

    title: Title
    description: Description | None = None

    def __post_init__(self) -> None:
        self.title = trimmed(self.title)


class TaskUpdate(Struct, forbid_unknown_fields=True):
    """Body of PUT and PATCH: partial, at least one field."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    completed: bool | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.title, UnsetType):
            self.title = trimmed(self.title)


class TaskComplete(Struct, forbid_unknown_fields=True):
    """Optional body of PATCH .../complete: absent `completed` toggles."""

    completed: bool | UnsetType = UNSET


class TaskRead(Struct):
    """A task as the API returns it; its fields are the columns the store selects, in this order."""

    id: TaskId
    title: str
    description: str | None
    completed: bool
    user_id: str
    created_at: datetime
    updated_at: datetime


# The listing's orders; the store keeps one index-served Sort for each (a test checks they agree).
SortName = Literal["created_at", "-created_at", "updated_at", "-updated_at", "title", "-title"]


class ListQuery(Struct, forbid_unknown_fields=False):
    """The query string of GET /api/{user_id}/tasks: each field is one parameter, at most once."""

    completed: (
        Annotated[
            Literal["true", "false"],
            Meta(description="Only done or only open tasks", extra={"rule": "must be true or false"}),
        ]
        | UnsetType
    ) = UNSET
    q: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=QUERY_TEXT_MAX,
                pattern=NO_NUL_PATTERN,
                description="Case-insensitive literal match in title or description",
                extra={"rule": f"must be 1-{QUERY_TEXT_MAX} characters, without NUL"},
            ),
        ]
        | UnsetType
    ) = UNSET
    sort: Annotated[SortName, Meta(description="Order; ties go by id")] = "-created_at"
    limit: Annotated[
        int,
        Meta(
            ge=1,
            le=LIMIT_MAX,
            description="Page size",
            extra={"rule": f"must be an integer from 1 to {LIMIT_MAX}"},
        ),
    ] = LIMIT_DEFAULT
    cursor: (
        Annotated[
            str,
            Meta(
                min_length=1,
                description="`meta.next_cursor` of the previous page",
                extra={"rule": CURSOR_RULE},
            ),
        ]
        | UnsetType
    ) = UNSET


class ResponseMeta(Struct):
    request_id: str


class ListMeta(Struct):
    request_id: str
    count: int
    limit: int
    next_cursor: str | None


class FieldError(Struct):
    field: str
    message: str


class ErrorBody(Struct):
    status: int
    code: str
    message: str
    details: list[FieldError] = msgspec.field(default_factory=list)


class TaskEnvelope(Struct):
    """A response with one task (a success has no `error` key)."""

    data: TaskRead
    meta: ResponseMeta


class TaskListEnvelope(Struct):
    """A page of tasks."""

    data: list[TaskRead]
    meta: ListMeta


class ErrorEnvelope(Struct):
    """A failed response: `data` is null and `error` says why."""

    data: None
    meta: ResponseMeta
    error: ErrorBody


class EmptyEnvelope(Struct):
    """A success with nothing to say, such as an allowed CORS preflight."""

    data: None
    meta: ResponseMeta


class Health(Struct):
    status: str


class HealthEnvelope(Struct):
    data: Health
    meta: ResponseMeta


class ServiceIndex(Struct):
    """Where to go from `/`: the interactive docs and the OpenAPI document."""

    docs: str
    openapi: str


class IndexEnvelope(Struct):
    data: ServiceIndex
    meta: ResponseMeta
