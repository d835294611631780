"""The msgspec Structs every body, response and the OpenAPI document are made of."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

TITLE_MAX = 200
DESCRIPTION_MAX = 2000

Title = Annotated[str, Meta(min_length=1, description="1-200 characters after trimming; no NUL")]
Description = Annotated[str, Meta(max_length=DESCRIPTION_MAX, description="Up to 2,000 characters; no NUL")]


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

    id: str
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


DataT = TypeVar("DataT")
MetaT = TypeVar("MetaT")


class Envelope(Struct, Generic[DataT, MetaT]):
    """A successful response: no `error` key."""

    data: DataT
    meta: MetaT


class ErrorEnvelope(Struct):
    """A failed response: `data` is null and `error` says why."""

    data: None
    meta: ResponseMeta
    error: ErrorBody


class Health(Struct):
    status: str
