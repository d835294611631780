"""The envelope's own Structs: `meta`, and `error` with its field details; every route shares them."""

from __future__ import annotations

import msgspec
from msgspec import Struct


class ResponseMeta(Struct):
    request_id: str


class FieldError(Struct):
    field: str
    message: str


class ErrorBody(Struct):
    status: int
    code: str
    message: str
    details: list[FieldError] = msgspec.field(default_factory=list)


class ErrorEnvelope(Struct):
    """A failed response: `data` is null and `error` says why."""

    data: None
    meta: ResponseMeta
    error: ErrorBody


class EmptyEnvelope(Struct):
    """A success with nothing to say, such as an allowed CORS preflight."""

    data: None
    meta: ResponseMeta
