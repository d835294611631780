"""The task routes: `/api/{user_id}/tasks` and below. The caller is already verified and owns the path."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import msgspec
from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from service.openapi.operation import (
    API_ERRORS,
    BODY_ERRORS,
    EXAMPLE_META,
    REQUEST_ID,
    ApiRoute,
    Operation,
    header,
    query_parameters,
)
from service.tasks import documentation as examples
from service.tasks.columns import StoredTask, utc_now
from service.tasks.documentation import (
    BAD_LIMIT,
    BAD_TITLE,
    ETAG,
    IDEMPOTENCY_KEY,
    IF_MATCH,
    IF_NONE_MATCH,
    TASK_HEADERS,
    TASK_LINKS,
    NonEmptyTaskUpdate,
    OneAnchorMove,
)
from service.tasks.fields import ANCHOR_RULE
from service.tasks.idempotency import create_once, idempotency_key
from service.tasks.ids import uuid7
from service.tasks.listing.cursors import CursorBinding
from service.tasks.order.move import move
from service.tasks.schemas import (
    ClearCompleted,
    Cleared,
    ClearedEnvelope,
    ListMeta,
    ListQuery,
    StatsEnvelope,
    TaskComplete,
    TaskCreate,
    TaskEnvelope,
    TaskListEnvelope,
    TaskMove,
    TaskRead,
    TaskUpdate,
)
from service.tasks.state import TasksState
from service.tasks.store import TaskStore
from service.web.bodies import read_json, read_query
from service.web.conditional import IF_MATCH_RULE, if_match, none_match
from service.web.endpoint import Endpoint
from service.web.envelope import json_response, meta, request_id
from service.web.errors import TASK_NOT_FOUND, NotFound, invalid
from service.web.schemas import FieldError


def _user_id(request: Request[TasksState]) -> str:
    user_id: str = request.scope["user"].user_id
    return user_id


def _store(request: Request[TasksState]) -> TaskStore:
    return request.state["store"]


def _task_id(request: Request[TasksState]) -> uuid.UUID:
    """The path's task id; anything but a UUID cannot name a task, so it is a 404 like any other."""
    try:
        return uuid.UUID(request.path_params["task_id"])
    except ValueError:
        raise NotFound(TASK_NOT_FOUND) from None


def _task_response(
    request: Request[TasksState], stored: StoredTask, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    envelope = TaskEnvelope(stored.task, meta(request.scope))
    return json_response(request.scope, status, envelope, {"etag": stored.etag(), **(headers or {})})


def _found(stored: StoredTask | None) -> StoredTask:
    if stored is None:
        raise NotFound(TASK_NOT_FOUND)
    return stored


class TaskCollection(Endpoint):
    """`/api/{user_id}/tasks`: list and create."""

    async def get(self, request: Request[TasksState]) -> Response:
        query = read_query(request, ListQuery)
        user_id = _user_id(request)
        codec = request.state["cursors"]
        binding = CursorBinding.of(user_id, query)
        after = None if query.cursor is UNSET else codec.open(query.cursor, binding)
        page = await _store(request).list(user_id, query, after)
        next_cursor = None if page.next is None else codec.seal(page.next, binding)
        page_meta = ListMeta(
            request_id(request.scope), count=len(page.items), limit=query.limit, next_cursor=next_cursor
        )
        return json_response(request.scope, 200, TaskListEnvelope(page.items, page_meta))

    async def post(self, request: Request[TasksState]) -> Response:
        body = await read_json(request, TaskCreate)
        key = idempotency_key(request)
        user_id, store = _user_id(request), _store(request)
        now = utc_now()
        task_id = uuid7(now)
        replayed = False
        if key is None:
            stored = await store.create(user_id, task_id, now, body)
        else:
            stored, replayed = await create_once(store, user_id, key, task_id, now, body)
        headers = {"location": f"/api/{quote(user_id, safe='')}/tasks/{stored.task.id}"}
        if replayed:
            headers["idempotent-replayed"] = "true"
        return _task_response(request, stored, 201, headers)


LIST_TASKS = Operation(
    "listTasks",
    "List one's tasks, a page at a time",
    200,
    TaskListEnvelope,
    (*API_ERRORS, 422),
    ok_example=TaskListEnvelope(
        [examples.TASK], ListMeta(EXAMPLE_META.request_id, count=1, limit=50, next_cursor=None)
    ),
    invalid=BAD_LIMIT,
    parameters=query_parameters(ListQuery),
)
CREATE_TASK = Operation(
    "createTask",
    "Create a task",
    201,
    TaskEnvelope,
    (*API_ERRORS, *BODY_ERRORS, 409),
    ok_example=TaskEnvelope(examples.TASK, EXAMPLE_META),
    body=TaskCreate,
    body_example=examples.CREATE,
    invalid=BAD_TITLE,
    parameters=[IDEMPOTENCY_KEY],
    ok_headers={
        **TASK_HEADERS,
        "Location": header("The new task's URL"),
        "Idempotent-Replayed": header("`true` when this is a replay of an earlier request"),
    },
    links=TASK_LINKS,
)


class TaskItem(Endpoint):
    """`/api/{user_id}/tasks/{task_id}`: read, update (PUT and PATCH alike), delete."""

    async def get(self, request: Request[TasksState]) -> Response:
        stored = _found(await _store(request).get(_user_id(request), _task_id(request)))
        tag = stored.etag()
        if none_match(request.headers.get("if-none-match"), tag):
            return Response(status_code=304, headers={"etag": tag, "x-request-id": request_id(request.scope)})
        return _task_response(request, stored)

    async def put(self, request: Request[TasksState]) -> Response:
        changes = await read_json(request, TaskUpdate)
        if all(getattr(changes, name) is UNSET for name in changes.__struct_fields__):
            raise invalid("body", "must set at least one of " + ", ".join(changes.__struct_fields__))
        user_id, task_id, store = _user_id(request), _task_id(request), _store(request)
        stored = await store.update(user_id, task_id, if_match(request, task_id), changes)
        if stored is None:
            raise await store.missing_or_stale(user_id, task_id)
        return _task_response(request, stored)

    patch = put

    async def delete(self, request: Request[TasksState]) -> Response:
        user_id, task_id, store = _user_id(request), _task_id(request), _store(request)
        stored = await store.delete(user_id, task_id, if_match(request, task_id))
        if stored is None:
            raise await store.missing_or_stale(user_id, task_id)
        return _task_response(request, stored)


def _task_write(
    operation_id: str,
    summary: str,
    ok: TaskRead,
    body: Any,
    body_example: msgspec.Struct,
    *,
    body_required: bool = True,
) -> Operation:
    """A write to one task by its id: partial or a toggle, conditional on If-Match."""
    return Operation(
        operation_id,
        summary,
        200,
        TaskEnvelope,
        (*API_ERRORS, *BODY_ERRORS, 404, 412),
        ok_example=TaskEnvelope(ok, EXAMPLE_META),
        body=body,
        body_example=body_example,
        body_required=body_required,
        invalid=BAD_TITLE,
        parameters=[IF_MATCH],
        ok_headers=TASK_HEADERS,
    )


GET_TASK = Operation(
    "getTask",
    "Read a task",
    200,
    TaskEnvelope,
    (*API_ERRORS, 404),
    ok_example=TaskEnvelope(examples.TASK, EXAMPLE_META),
    parameters=[IF_NONE_MATCH],
    ok_headers=TASK_HEADERS,
    extra_responses={
        "304": {
            "description": "Not modified",
            "headers": {
                "ETag": ETAG,
                "X-Request-ID": REQUEST_ID,
            },
        }
    },
)
# PUT and PATCH are one handler: both partial, as the contract says.
REPLACE_TASK = _task_write(
    "replaceTask",
    "Update a task (partial, like PATCH)",
    examples.RENAMED,
    NonEmptyTaskUpdate,
    examples.RENAME,
)
UPDATE_TASK = _task_write(
    "updateTask", "Update some fields of a task", examples.RENAMED, NonEmptyTaskUpdate, examples.RENAME
)
DELETE_TASK = Operation(
    "deleteTask",
    "Delete a task; answers it as it was",
    200,
    TaskEnvelope,
    (*API_ERRORS, 404, 412, 422),
    invalid=FieldError("If-Match", IF_MATCH_RULE),
    ok_example=TaskEnvelope(examples.TASK, EXAMPLE_META),
    parameters=[IF_MATCH],
    ok_headers=TASK_HEADERS,
)


class TaskCompletion(Endpoint):
    """`/api/{user_id}/tasks/{task_id}/complete`: toggle, or set with `{"completed": bool}`."""

    async def patch(self, request: Request[TasksState]) -> Response:
        body = await read_json(request, TaskComplete, optional=True)
        completed = None if body is None or body.completed is UNSET else body.completed
        user_id, task_id, store = _user_id(request), _task_id(request), _store(request)
        stored = await store.set_completed(user_id, task_id, if_match(request, task_id), completed)
        if stored is None:
            raise await store.missing_or_stale(user_id, task_id)
        return _task_response(request, stored)


COMPLETE_TASK = _task_write(
    "completeTask",
    "Toggle `completed` (no body, or `{}`), or set it",
    examples.DONE,
    TaskComplete,
    examples.COMPLETE,
    body_required=False,
)


class TaskMoving(Endpoint):
    """`/api/{user_id}/tasks/{task_id}/move`: place the task right before or after another one."""

    async def post(self, request: Request[TasksState]) -> Response:
        side, anchor = (await read_json(request, TaskMove)).anchor()
        task_id = _task_id(request)
        if anchor == task_id:
            raise invalid(side, ANCHOR_RULE)
        store = _store(request)
        stored = await move(
            store.runner, _user_id(request), task_id, if_match(request, task_id), anchor, side == "after"
        )
        return _task_response(request, stored)


MOVE_TASK = Operation(
    "moveTask",
    "Place a task right before or after another of one's tasks (the manual order, sort=position)",
    200,
    TaskEnvelope,
    (*API_ERRORS, *BODY_ERRORS, 404, 409, 412),
    ok_example=TaskEnvelope(examples.MOVED, EXAMPLE_META),
    body=OneAnchorMove,
    body_example=examples.MOVE,
    invalid=BAD_TITLE,
    parameters=[IF_MATCH],
    ok_headers=TASK_HEADERS,
)


class TaskStatistics(Endpoint):
    """`/api/{user_id}/tasks/stats`: the user's tasks counted."""

    async def get(self, request: Request[TasksState]) -> Response:
        stats = await _store(request).stats(_user_id(request))
        return json_response(request.scope, 200, StatsEnvelope(stats, meta(request.scope)))


TASK_STATS = Operation(
    "taskStats",
    "Count one's tasks: total, active, completed, overdue, and tags",
    200,
    StatsEnvelope,
    API_ERRORS,
    ok_example=StatsEnvelope(examples.STATS, EXAMPLE_META),
)


class CompletedClearing(Endpoint):
    """`/api/{user_id}/tasks/clear-completed`: delete every completed task, in one transaction."""

    async def post(self, request: Request[TasksState]) -> Response:
        await read_json(request, ClearCompleted, optional=True)
        deleted = await _store(request).clear_completed(_user_id(request))
        return json_response(request.scope, 200, ClearedEnvelope(Cleared(deleted), meta(request.scope)))


CLEAR_COMPLETED = Operation(
    "clearCompleted",
    "Delete every completed task, in one transaction",
    200,
    ClearedEnvelope,
    (*API_ERRORS, *BODY_ERRORS),
    ok_example=ClearedEnvelope(Cleared(deleted=3), EXAMPLE_META),
    body=ClearCompleted,
    body_example=ClearCompleted(),
    body_required=False,
    invalid=BAD_TITLE,
)

# The words below /tasks/ that name routes of their own (the changes feed is the sync feature's):
# never task ids, for any method, so a method they do not take is 405 with their own Allow, not a
# task route's 404. A test checks the app's routes against this set.
FIXED_NAMES = frozenset({"changes", "stats", "clear-completed"})


class TaskRoute(ApiRoute):
    """A route under `/tasks/{task_id}`: it does not match when the id is one of the fixed names."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and child["path_params"]["task_id"] in FIXED_NAMES:
            return Match.NONE, {}
        return match, child


routes = [
    ApiRoute("/api/{user_id}/tasks", TaskCollection, get=LIST_TASKS, post=CREATE_TASK),
    ApiRoute("/api/{user_id}/tasks/stats", TaskStatistics, get=TASK_STATS),
    ApiRoute("/api/{user_id}/tasks/clear-completed", CompletedClearing, post=CLEAR_COMPLETED),
    TaskRoute(
        "/api/{user_id}/tasks/{task_id}",
        TaskItem,
        get=GET_TASK,
        put=REPLACE_TASK,
        patch=UPDATE_TASK,
        delete=DELETE_TASK,
    ),
    TaskRoute("/api/{user_id}/tasks/{task_id}/complete", TaskCompletion, patch=COMPLETE_TASK),
    TaskRoute("/api/{user_id}/tasks/{task_id}/move", TaskMoving, post=MOVE_TASK),
]
