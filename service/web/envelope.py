"""The `data`/`meta`/`error` envelope every JSON response is wrapped in, and the request id."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

import msgspec
from starlette.responses import Response
from starlette.types import Scope

from service.web.errors import ApiError
from service.web.schemas import ErrorBody, ErrorEnvelope, ResponseMeta

REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID = 128

_encode = msgspec.json.Encoder().encode
# Request ids need to be unique, not unguessable: a seeded PRNG spares a getrandom syscall per request.
_new_id = random.Random(os.urandom(32)).getrandbits  # noqa: S311


def _valid_request_id(raw: bytes) -> bool:
    return 0 < len(raw) <= MAX_REQUEST_ID and all(0x21 <= b <= 0x7E for b in raw)


def request_id(scope: Scope) -> str:
    """The request's id: the client's `X-Request-ID` when well-formed, else a new one; fixed per request."""
    rid: str | None = scope.get("request_id")
    if rid is None:
        rid = (
            next(
                (
                    v.decode("ascii")
                    for k, v in scope["headers"]
                    if k == REQUEST_ID_HEADER and _valid_request_id(v)
                ),
                None,
            )
            or f"{_new_id(128):032x}"
        )
        scope["request_id"] = rid
    return rid


def json_response(
    scope: Scope, status: int, envelope: msgspec.Struct, headers: Mapping[str, str] | None = None
) -> Response:
    """Encode an envelope once, straight to bytes, with the request id (service/web/common_headers.py adds the rest)."""
    all_headers = {"x-request-id": request_id(scope)}
    if headers:
        all_headers.update(headers)
    return Response(_encode(envelope), status, all_headers, "application/json")


def meta(scope: Scope) -> ResponseMeta:
    return ResponseMeta(request_id(scope))


def error_response(scope: Scope, exc: ApiError) -> Response:
    body = ErrorBody(status=exc.status, code=exc.code, message=exc.message, details=exc.details)
    envelope = ErrorEnvelope(data=None, meta=ResponseMeta(request_id(scope)), error=body)
    return json_response(scope, exc.status, envelope, exc.headers)
