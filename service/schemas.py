"""The msgspec Structs every body, response and the OpenAPI document are made of."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

TITLE_MAX = 200
DESCRIPTION_MAX = 2000
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
        description="1-200 characters after trimming white space; no NUL",
        examples=["Buy milk"],
        # Documented, not enforced at decoding: "" must get the same "must not be blank" as "  ".
        extra_json_schema={"minLength": 1, "pattern": TITLE_PATTERN},
    ),
]
Description = Annotated[
    str,
    Meta(
        max_length=DESCRIPTION_MAX,
        description="Up to 2,000 characters, stored as sent; no NUL",
        examples=["2 litres, semi-skimmed"],
        extra_json_schema={"pattern": NO_NUL_PATTERN},
    ),
]
TaskId = Annotated[str, Meta(description="UUIDv7, lower case", extra_json_schema={"format": "uuid"})]


class TaskCreate(Struct, forbid_unknown_fields=True):
    """Body of POST /api/{user_id}/tasks."""

    title: Title
    description: Description | None = None


class TaskUpdate(Struct, forbid_unknown_fields=True):
    """Body of PUT and PATCH: partial, at least one field."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    completed: bool | UnsetType = UNSET


class TaskComplete(Struct, forbid_unknown_fields=True):
    """Optional body of PATCH .../complete: absent `completed` toggles."""

    completed: bool | UnsetType = UNSET


class TaskRead(Struct):
    """A task as the API returns it."""

    id: TaskId
    title: str
    description: str | None
    completed: bool
    user_id: str
    created_at: datetime
    updated_at: datetime


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
