"""The OpenAPI 3.1 document, built once at start from the app's routes and the Operations beside them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from starlette.endpoints import HTTPEndpoint
from starlette.routing import BaseRoute, Route

from service.openapi.operation import EXAMPLE_META, REF, REQUEST_ID, ApiRoute, Operation, header, parameter
from service.web.errors import BY_STATUS, error_codes
from service.web.limits import MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_URL_BYTES
from service.web.schemas import ErrorBody, ErrorEnvelope

HTTP_METHODS = ("get", "put", "post", "delete", "patch")

_ERROR_TEXT = {
    400: "The body is not valid JSON",
    401: "No valid bearer token",
    403: "The path names another user",
    404: "No such task (or it belongs to someone else)",
    410: "The sync token is older than SYNC_RETENTION: start over with a full sync (no `since`)",
    409: "Idempotency-Key reused with another body, or its first request is still running (`CONFLICT`); "
    "the user holds MAX_TASKS_PER_USER tasks already (`QUOTA_EXCEEDED`)",
    412: "If-Match does not match the task's current ETag",
    413: f"The body is larger than {MAX_BODY_BYTES:,} bytes",
    414: f"The URL is longer than {MAX_URL_BYTES:,} bytes",
    415: "Content-Type is present and not JSON",
    422: "A parameter or the body breaks a rule; `error.details` names the fields",
    429: "Too many of this user's requests are in progress at once (`TOO_MANY_REQUESTS`), or, on the "
    "event stream, MAX_STREAMS_PER_USER streams are open (`TOO_MANY_STREAMS`); retry after `Retry-After` seconds",
    431: f"The request headers are larger than {MAX_HEADER_BYTES:,} bytes",
    500: "Unexpected error; no internals are disclosed",
    503: "The database is unavailable; retry after `Retry-After` seconds",
}
# The HTTP protocol answers these while it reads the head (service/web/http_protocol.py): any path can give them.
_LIMIT_ERRORS = (414, 431)

_HEADERS_BY_STATUS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": header('`Bearer realm="api"`, with `error="invalid_token"` when a token was bad')
    },
    429: {"Retry-After": header("Seconds to wait", {"type": "integer"})},
    503: {"Retry-After": header("Seconds to wait", {"type": "integer"})},
}
# Path parameters, by the placeholder that names them.
_PATH_PARAMETERS = {
    "{user_id}": parameter(
        "user_id", "path", {"type": "string", "minLength": 1, "maxLength": 255}, "Must be the token's user"
    ),
    "{task_id}": parameter(
        "task_id", "path", {"type": "string", "format": "uuid"}, "The task's id (any case)"
    ),
}
XREQUEST_ID = parameter(
    "X-Request-ID",
    "header",
    {"type": "string"},
    "Echoed in the response when it is 1-128 visible ASCII characters; any other value is replaced, not refused",
)


def route_operations(routes: Sequence[BaseRoute]) -> list[tuple[str, str]]:
    """(method, path) of every operation the app serves, read off its route table."""
    found: list[tuple[str, str]] = []
    for route in routes:
        if not isinstance(route, Route):
            continue
        endpoint = route.endpoint
        if isinstance(endpoint, type) and issubclass(endpoint, HTTPEndpoint):
            methods = [m for m in HTTP_METHODS if callable(getattr(endpoint, m, None))]
        else:
            methods = [m.lower() for m in route.methods or () if m.lower() in HTTP_METHODS]
        found.extend((method, route.path) for method in methods)
    return found


def operation_of(routes: Sequence[BaseRoute], method: str, path: str) -> Operation:
    """The Operation documenting `method` on `path`; a served method without one is a bug, and fails here."""
    for route in routes:
        if isinstance(route, Route) and route.path == path:
            if not isinstance(route, ApiRoute) or method not in route.operations:
                raise LookupError(f"{method.upper()} {path} is served but has no Operation beside its route")
            return route.operations[method]
    raise LookupError(f"no route for {path}")


def _media(schema: dict[str, Any], example: msgspec.Struct | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = msgspec.to_builtins(example)
    return {"content": {"application/json": media}}


def _error_example(status: int, op: Operation) -> ErrorEnvelope:
    """The envelope the typed error for `status` produces, with the operation's typical field for a 422."""
    error = BY_STATUS[status]
    details = []
    if status == 422:
        if op.invalid is None:
            raise LookupError(f"{op.operation_id} answers 422 and needs an `invalid` example")
        details = [op.invalid]
    return ErrorEnvelope(None, EXAMPLE_META, ErrorBody(status, error.code, error.message, details))


def build(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The document for exactly the operations in `routes`."""
    served = [(method, path, operation_of(routes, method, path)) for method, path in route_operations(routes)]
    # Every body and response is one of these: the same types the handlers encode and decode.
    types: list[Any] = []
    for _, _, op in served:
        for kind in (op.body, op.ok_type):
            if kind is not None and all(kind is not known for known in types):
                types.append(kind)
    types.append(ErrorEnvelope)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    # A closed set, so typed clients can narrow on it; read off the error classes, never retyped.
    components["ErrorBody"]["properties"]["code"]["enum"] = error_codes()
    schema_of = dict(zip(map(id, types), schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in served:
        parameters = [p for name, p in _PATH_PARAMETERS.items() if name in path]
        parameters += [*op.parameters, *([XREQUEST_ID] if op.ok_type is not None else [])]
        if op.ok_type is None:
            ok: dict[str, Any] = {"description": op.summary, "content": op.ok_content}
        else:
            ok = {
                "description": op.summary,
                **_media(schema_of[id(op.ok_type)], op.ok_example),
                "headers": {**op.ok_headers, "X-Request-ID": REQUEST_ID},
            }
        if op.links:
            ok["links"] = op.links
        responses: dict[str, Any] = {str(op.ok): ok, **op.extra_responses}
        for status in (*op.errors, *_LIMIT_ERRORS):
            responses[str(status)] = {
                "description": _ERROR_TEXT[status],
                **_media(schema_of[id(ErrorEnvelope)], _error_example(status, op)),
                "headers": {**_HEADERS_BY_STATUS.get(status, {}), "X-Request-ID": REQUEST_ID},
            }
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": ["tasks" if path.startswith("/api/") else "service"],
            "parameters": parameters,
            "responses": responses,
            "security": [{"bearerAuth": []}] if op.authenticated else [],
        }
        if op.body is not None:
            operation["requestBody"] = {
                "required": op.body_required,
                **_media(schema_of[id(op.body)], op.body_example),
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Todo API",
            "version": "1.0.0",
            "description": "Every user's tasks, behind Better Auth bearer tokens. "
            "A path naming another user is 403; another user's task is 404, exactly like a missing one. "
            "**Authorize** takes a bearer token: the JWT your Better Auth issues (`authClient.token()`), "
            "or locally one from `python -m service token USER_ID`.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


def encode(routes: Sequence[BaseRoute]) -> bytes:
    return msgspec.json.encode(build(routes))
