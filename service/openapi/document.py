"""The OpenAPI 3.1 document, built once at start from the app's route table and the msgspec Structs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from starlette.endpoints import HTTPEndpoint
from starlette.routing import BaseRoute, Route

from service.ops import docs
from service.sync.schemas import ChangesEnvelope, ChangesMeta, ChangesQuery, Deletion, Upsert
from service.tasks.idempotency import IDEMPOTENCY_KEY_PATTERN
from service.tasks.schemas import (
    ClearCompleted,
    Cleared,
    ClearedEnvelope,
    ErrorBody,
    ErrorEnvelope,
    FieldError,
    Health,
    HealthEnvelope,
    IndexEnvelope,
    ListMeta,
    ListQuery,
    ResponseMeta,
    StatsEnvelope,
    TagCount,
    TaskComplete,
    TaskCreate,
    TaskEnvelope,
    TaskListEnvelope,
    TaskMove,
    TaskRead,
    TaskStats,
    TaskUpdate,
)
from service.web.bodies import rules
from service.web.errors import BY_STATUS, error_codes
from service.web.limits import MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_URL_BYTES

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
REF = "#/components/schemas/{name}"

# Every body and response is one of these: the same types the handlers encode and decode.
NonEmptyTaskUpdate = Annotated[TaskUpdate, msgspec.Meta(extra_json_schema={"minProperties": 1})]
# Exactly one of before and after (it takes no other property).
OneAnchorMove = Annotated[TaskMove, msgspec.Meta(extra_json_schema={"minProperties": 1, "maxProperties": 1})]
_TYPES: list[Any] = [
    TaskCreate,
    NonEmptyTaskUpdate,
    TaskComplete,
    OneAnchorMove,
    ClearCompleted,
    TaskEnvelope,
    TaskListEnvelope,
    StatsEnvelope,
    ClearedEnvelope,
    HealthEnvelope,
    ErrorEnvelope,
    IndexEnvelope,
    ChangesEnvelope,
]

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


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


_REQUEST_ID = _header("Equals `meta.request_id`: the client's `X-Request-ID` if well-formed, else a new one")
_ETAG = _header("Strong ETag of the task's current version")
_HEADERS_BY_STATUS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": _header('`Bearer realm="api"`, with `error="invalid_token"` when a token was bad')
    },
    429: {"Retry-After": _header("Seconds to wait", {"type": "integer"})},
    503: {"Retry-After": _header("Seconds to wait", {"type": "integer"})},
}


def _param(
    name: str, where: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


USER_ID = _param(
    "user_id", "path", {"type": "string", "minLength": 1, "maxLength": 255}, "Must be the token's user"
)
TASK_ID = _param("task_id", "path", {"type": "string", "format": "uuid"}, "The task's id (any case)")
X_REQUEST_ID = _param(
    "X-Request-ID",
    "header",
    {"type": "string"},
    "Echoed in the response when it is 1-128 visible ASCII characters; any other value is replaced, not refused",
)
IF_MATCH = _param(
    "If-Match", "header", {"type": "string"}, "Write only if the task's ETag is one of these, or `*`"
)
IF_NONE_MATCH = _param("If-None-Match", "header", {"type": "string"}, "Answer 304 if the ETag still matches")
IDEMPOTENCY_KEY = _param(
    "Idempotency-Key",
    "header",
    {"type": "string", "pattern": f"^{IDEMPOTENCY_KEY_PATTERN.pattern}$"},
    "Retries with the same key and body within 24 h replay the first 201 and create nothing",
)


def query_parameters(schema: type[msgspec.Struct]) -> list[dict[str, Any]]:
    """One query parameter per field of a query Struct, with the schema msgspec derives for it."""
    _, components = msgspec.json.schema_components([schema], ref_template=REF)
    found = []
    for name, prop in components[schema.__name__]["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        if "enum" in prop and "type" not in prop:
            prop["type"] = "string"
        if prop.get("type") == "array":
            # A list field is the parameter repeated: ?tag=a&tag=b.
            found.append({**_param(name, "query", prop, description), "explode": True})
        else:
            found.append(_param(name, "query", prop, description))
    return found


LIST_QUERY = query_parameters(ListQuery)
CHANGES_QUERY = query_parameters(ChangesQuery)
LAST_EVENT_ID = _param(
    "Last-Event-ID",
    "header",
    {"type": "string"},
    "The `id` of the last `changed` event received: a `changed` follows `ready` at once if anything changed since",
)
_SINCE_TOKEN = "AQAAAAAAAAAqAAYK9w2sE4BHoQ0I2x5Yc0Kf3u1Vb2mZQ"  # noqa: S105 - an example, not a secret
# Before OpenAPI 3.2, the schema of an event stream describes one event.
_SINCE_DATA = {
    "type": "string",
    "contentMediaType": "application/json",
    "description": '`{"since": TOKEN}`',
}
_EVENT_SCHEMA = {
    "oneOf": [
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {"event": {"const": "ready"}, "data": _SINCE_DATA},
        },
        {
            "type": "object",
            "required": ["event", "id", "data"],
            "properties": {"event": {"const": "changed"}, "id": {"type": "string"}, "data": _SINCE_DATA},
        },
        {
            "type": "object",
            "required": ["event"],
            "properties": {"event": {"const": "expired"}, "data": {"const": "{}"}},
        },
    ]
}
_EVENT_STREAM_EXAMPLE = (
    f'event: ready\r\ndata: {{"since":"{_SINCE_TOKEN}"}}\r\n\r\n'
    ": ping\r\n\r\n"
    f'id: {_SINCE_TOKEN}\r\nevent: changed\r\ndata: {{"since":"{_SINCE_TOKEN}"}}\r\n\r\n'
)


# Examples are instances of the structs the handlers encode, so they have the served shape; a test
# checks each one against the document's own schema, and sends the request examples to the API.
_META = ResponseMeta(request_id="5f0c6b1e2a9d4c7f8e3b1a0d9c8e7f6a")
_TASK = TaskRead(
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
_RENAMED = msgspec.structs.replace(
    _TASK, title="Buy oat milk", updated_at=datetime(2026, 1, 15, 10, 5, tzinfo=UTC)
)
_DONE = msgspec.structs.replace(
    _TASK,
    completed=True,
    updated_at=datetime(2026, 1, 15, 18, 0, tzinfo=UTC),
    completed_at=datetime(2026, 1, 15, 18, 0, tzinfo=UTC),
)
_MOVED = msgspec.structs.replace(
    _TASK, position="7fffffffffffV", updated_at=datetime(2026, 1, 15, 11, 0, tzinfo=UTC)
)
_STATS = TaskStats(
    total=12,
    active=9,
    completed=3,
    overdue=2,
    tags=[TagCount("work", 5), TagCount("groceries", 2)],
)
_OK_EXAMPLES: dict[str, msgspec.Struct] = {
    "index": IndexEnvelope(docs.INDEX, _META),
    "healthz": HealthEnvelope(Health(status="ok"), _META),
    "readyz": HealthEnvelope(Health(status="ready"), _META),
    "listTasks": TaskListEnvelope([_TASK], ListMeta(_META.request_id, count=1, limit=50, next_cursor=None)),
    "createTask": TaskEnvelope(_TASK, _META),
    "getTask": TaskEnvelope(_TASK, _META),
    "replaceTask": TaskEnvelope(_RENAMED, _META),
    "updateTask": TaskEnvelope(_RENAMED, _META),
    "deleteTask": TaskEnvelope(_TASK, _META),
    "completeTask": TaskEnvelope(_DONE, _META),
    "moveTask": TaskEnvelope(_MOVED, _META),
    "taskStats": StatsEnvelope(_STATS, _META),
    "clearCompleted": ClearedEnvelope(Cleared(deleted=3), _META),
    "getChanges": ChangesEnvelope(
        [
            Upsert(_DONE),
            Deletion(id=uuid.UUID("01934f2e-9a4b-7c5d-8e6f-0a1b2c3d4e5f"), deleted_at=_DONE.updated_at),
        ],
        ChangesMeta(_META.request_id, count=2, limit=200, next_since=_SINCE_TOKEN, has_more=False),
    ),
}
_BODY_EXAMPLES: dict[str, msgspec.Struct] = {
    "createTask": TaskCreate(
        title="Buy milk",
        description="2 litres, semi-skimmed",
        due_at=datetime(2026, 1, 20, 17, 0, tzinfo=UTC),
        priority="medium",
        tags=["groceries"],
    ),
    "replaceTask": TaskUpdate(title="Buy oat milk"),
    "updateTask": TaskUpdate(title="Buy oat milk"),
    "completeTask": TaskComplete(completed=True),
    "moveTask": TaskMove(after=uuid.UUID("01934f2e-6b00-7a11-8c3d-1e2f3a4b5c6d")),
    "clearCompleted": ClearCompleted(),
}


def _error_example(status: int, has_body: bool) -> ErrorEnvelope:
    """The envelope the typed error for `status` produces, with a typical field for a 422."""
    error = BY_STATUS[status]
    details = []
    if status == 422:
        details = [
            FieldError("title", rules(TaskCreate)["title"])
            if has_body
            else FieldError("limit", rules(ListQuery)["limit"])
        ]
    return ErrorEnvelope(None, _META, ErrorBody(status, error.code, error.message, details))


@dataclass(frozen=True)
class Operation:
    """What the route table cannot say about one method of one path."""

    operation_id: str
    summary: str
    ok: int
    ok_type: Any | None  # None: not an envelope; `ok_content` says what it is
    errors: Sequence[int]
    ok_content: dict[str, Any] = field(default_factory=dict)
    body: Any | None = None
    body_required: bool = True
    parameters: Sequence[dict[str, Any]] = ()
    ok_headers: dict[str, Any] = field(default_factory=dict)
    extra_responses: dict[str, Any] = field(default_factory=dict)
    authenticated: bool = True


_API_ERRORS = (401, 403, 429, 500, 503)
# The HTTP protocol answers these while it reads the head (service/web/http_protocol.py): any path can give them.
_LIMIT_ERRORS = (414, 431)
_BODY_ERRORS = (400, 413, 415, 422)
_TASK_HEADERS = {"ETag": _ETAG}
_TASK_LINKS = {
    f"{verb}Task": {
        "operationId": f"{verb}Task",
        "parameters": {"user_id": "$request.path.user_id", "task_id": "$response.body#/data/id"},
    }
    for verb in ("get", "replace", "update", "complete", "move", "delete")
}


def _task_update(operation_id: str, summary: str) -> Operation:
    return Operation(
        operation_id,
        summary,
        200,
        TaskEnvelope,
        (*_API_ERRORS, *_BODY_ERRORS, 404, 412),
        body=NonEmptyTaskUpdate,
        parameters=[IF_MATCH],
        ok_headers=_TASK_HEADERS,
    )


OPERATIONS: dict[tuple[str, str], Operation] = {
    ("get", "/"): Operation(
        "index",
        "Points to the docs: a redirect to /docs, with the way in as JSON",
        307,
        IndexEnvelope,
        (),
        ok_headers={"Location": _header("`/docs`, relative")},
        authenticated=False,
    ),
    ("get", "/openapi.json"): Operation(
        "openapi",
        "This document",
        200,
        None,
        (),
        ok_content={"application/json": {"schema": {"type": "object"}}},
        authenticated=False,
    ),
    ("get", "/docs"): Operation(
        "docs", "Interactive documentation", 200, None, (), ok_content={"text/html": {}}, authenticated=False
    ),
    ("get", "/docs/init.js"): Operation(
        "docsScript",
        "Script of the documentation page",
        200,
        None,
        (),
        ok_content={"text/javascript": {}},
        authenticated=False,
    ),
    ("get", "/metrics"): Operation(
        "metrics",
        "Prometheus metrics (when enabled; bearer METRICS_TOKEN when set)",
        200,
        None,
        (),
        ok_content={"text/plain": {}},
        authenticated=False,
    ),
    ("get", "/healthz"): Operation(
        "healthz", "The process is running", 200, HealthEnvelope, (), authenticated=False
    ),
    ("get", "/readyz"): Operation(
        "readyz", "The database answers", 200, HealthEnvelope, (503,), authenticated=False
    ),
    ("get", "/api/{user_id}/tasks"): Operation(
        "listTasks",
        "List one's tasks, a page at a time",
        200,
        TaskListEnvelope,
        (*_API_ERRORS, 422),
        parameters=LIST_QUERY,
    ),
    ("post", "/api/{user_id}/tasks"): Operation(
        "createTask",
        "Create a task",
        201,
        TaskEnvelope,
        (*_API_ERRORS, *_BODY_ERRORS, 409),
        body=TaskCreate,
        parameters=[IDEMPOTENCY_KEY],
        ok_headers={
            **_TASK_HEADERS,
            "Location": _header("The new task's URL"),
            "Idempotent-Replayed": _header("`true` when this is a replay of an earlier request"),
        },
    ),
    ("get", "/api/{user_id}/tasks/{task_id}"): Operation(
        "getTask",
        "Read a task",
        200,
        TaskEnvelope,
        (*_API_ERRORS, 404),
        parameters=[IF_NONE_MATCH],
        ok_headers=_TASK_HEADERS,
        extra_responses={
            "304": {"description": "Not modified", "headers": {"ETag": _ETAG, "X-Request-ID": _REQUEST_ID}}
        },
    ),
    # PUT and PATCH are one handler: both partial, as the contract says.
    ("put", "/api/{user_id}/tasks/{task_id}"): _task_update(
        "replaceTask", "Update a task (partial, like PATCH)"
    ),
    ("patch", "/api/{user_id}/tasks/{task_id}"): _task_update("updateTask", "Update some fields of a task"),
    ("delete", "/api/{user_id}/tasks/{task_id}"): Operation(
        "deleteTask",
        "Delete a task; answers it as it was",
        200,
        TaskEnvelope,
        (*_API_ERRORS, 404, 412),
        parameters=[IF_MATCH],
        ok_headers=_TASK_HEADERS,
    ),
    ("get", "/api/{user_id}/tasks/changes"): Operation(
        "getChanges",
        "What changed since a sync token: upserts and deletions, oldest first (a full sync without one)",
        200,
        ChangesEnvelope,
        (*_API_ERRORS, 410, 422),
        parameters=CHANGES_QUERY,
    ),
    ("get", "/api/{user_id}/events"): Operation(
        "streamEvents",
        "Server-sent events: `ready`, then `changed` whenever the user's tasks change; `: ping` every 15 s",
        200,
        None,
        _API_ERRORS,
        ok_content={"text/event-stream": {"schema": _EVENT_SCHEMA, "example": _EVENT_STREAM_EXAMPLE}},
        parameters=[LAST_EVENT_ID],
    ),
    ("patch", "/api/{user_id}/tasks/{task_id}/complete"): Operation(
        "completeTask",
        "Toggle `completed` (no body, or `{}`), or set it",
        200,
        TaskEnvelope,
        (*_API_ERRORS, *_BODY_ERRORS, 404, 412),
        body=TaskComplete,
        body_required=False,
        parameters=[IF_MATCH],
        ok_headers=_TASK_HEADERS,
    ),
    ("post", "/api/{user_id}/tasks/{task_id}/move"): Operation(
        "moveTask",
        "Place a task right before or after another of one's tasks (the manual order, sort=position)",
        200,
        TaskEnvelope,
        (*_API_ERRORS, *_BODY_ERRORS, 404, 409, 412),
        body=OneAnchorMove,
        parameters=[IF_MATCH],
        ok_headers=_TASK_HEADERS,
    ),
    ("get", "/api/{user_id}/tasks/stats"): Operation(
        "taskStats",
        "Count one's tasks: total, active, completed, overdue, and tags",
        200,
        StatsEnvelope,
        _API_ERRORS,
    ),
    ("post", "/api/{user_id}/tasks/clear-completed"): Operation(
        "clearCompleted",
        "Delete every completed task, in one transaction",
        200,
        ClearedEnvelope,
        (*_API_ERRORS, *_BODY_ERRORS),
        body=ClearCompleted,
        body_required=False,
    ),
}


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


def _ref(schema: dict[str, Any], example: msgspec.Struct | None = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = msgspec.to_builtins(example)
    return {"content": {"application/json": media}}


def build(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    """The document for exactly the operations in `routes`; a route without an Operation is a bug."""
    schemas, components = msgspec.json.schema_components(_TYPES, ref_template=REF)
    # A closed set, so typed clients can narrow on it; read off the error classes, never retyped.
    components["ErrorBody"]["properties"]["code"]["enum"] = error_codes()
    schema_of = dict(zip(map(id, _TYPES), schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for method, path in route_operations(routes):
        op = OPERATIONS[(method, path)]
        parameters = [
            *([USER_ID] if "{user_id}" in path else []),
            *([TASK_ID] if "{task_id}" in path else []),
        ]
        parameters += [*op.parameters, *([X_REQUEST_ID] if op.ok_type is not None else [])]
        if op.ok_type is None:
            ok: dict[str, Any] = {"description": op.summary, "content": op.ok_content}
        else:
            ok = {
                "description": op.summary,
                **_ref(schema_of[id(op.ok_type)], _OK_EXAMPLES[op.operation_id]),
                "headers": {**op.ok_headers, "X-Request-ID": _REQUEST_ID},
            }
        if op.operation_id == "createTask":
            ok["links"] = _TASK_LINKS
        responses: dict[str, Any] = {str(op.ok): ok, **op.extra_responses}
        for status in (*op.errors, *_LIMIT_ERRORS):
            responses[str(status)] = {
                "description": _ERROR_TEXT[status],
                **_ref(schema_of[id(ErrorEnvelope)], _error_example(status, op.body is not None)),
                "headers": {**_HEADERS_BY_STATUS.get(status, {}), "X-Request-ID": _REQUEST_ID},
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
            body = _ref(schema_of[id(op.body)], _BODY_EXAMPLES[op.operation_id])
            operation["requestBody"] = {"required": op.body_required, **body}
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
