"""The task routes: `/api/{user_id}/tasks` and below. The caller is already verified and owns the path."""

from __future__ import annotations

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
    IF_NONE_MATCH,
    REQUEST_ID,
    ApiRoute,
    Operation,
    header,
    query_parameters,
)
from service.tasks import documentation as examples
from service.tasks.columns import utc_now
from service.tasks.documentation import (
    BAD_LIMIT,
    BAD_TITLE,
    ETAG,
    IDEMPOTENCY_KEY,
    IF_MATCH,
    TASK_HEADERS,
    TASK_LINKS,
    NonEmptyTaskUpdate,
)
from service.tasks.idempotency import create_once, idempotency_key
from service.tasks.ids import uuid7
from service.tasks.listing.cursors import CursorBinding
from service.tasks.order.routes import MOVE_TASK, TaskMoving
from service.tasks.requests import found, path_task_id, task_response, task_store
from service.tasks.schemas import (
    DeletedMeta,
    ListMeta,
    ListQuery,
    TaskComplete,
    TaskCreate,
    TaskDeletedEnvelope,
    TaskEnvelope,
    TaskListEnvelope,
    TaskRead,
    TaskUpdate,
)
from service.tasks.state import TasksState
from service.tasks.summary import CLEAR_COMPLETED, TASK_STATS, CompletedClearing, TaskStatistics
from service.web.bodies import read_json, read_query
from service.web.conditional import IF_MATCH_RULE, if_match, none_match
from service.web.endpoint import Endpoint, caller
from service.web.envelope import json_response, request_id
from service.web.errors import invalid
from service.web.schemas import FieldError


class TaskCollection(Endpoint):
    """`/api/{user_id}/tasks`: list and create."""

    async def get(self, request: Request[TasksState]) -> Response:
        query = read_query(request, ListQuery)
        user_id = caller(request)
        codec = request.state["cursors"]
        binding = CursorBinding.of(user_id, query)
        after = None if query.cursor is UNSET else codec.open(query.cursor, binding)
        page = await task_store(request).list(user_id, query, after)
        next_cursor = None if page.next is None else codec.seal(page.next, binding)
        page_meta = ListMeta(
            request_id(request.scope), count=len(page.items), limit=query.limit, next_cursor=next_cursor
        )
        return json_response(request.scope, 200, TaskListEnvelope(page.items, page_meta))

    async def post(self, request: Request[TasksState]) -> Response:
        body = await read_json(request, TaskCreate)
        key = idempotency_key(request)
        user_id, store = caller(request), task_store(request)
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
        return task_response(request, stored, 201, headers)


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
        stored = found(await task_store(request).get(caller(request), path_task_id(request)))
        tag = stored.etag()
        if none_match(request.headers.get("if-none-match"), tag):
            return Response(status_code=304, headers={"etag": tag, "x-request-id": request_id(request.scope)})
        return task_response(request, stored)

    async def put(self, request: Request[TasksState]) -> Response:
        changes = await read_json(request, TaskUpdate)
        if all(getattr(changes, name) is UNSET for name in changes.__struct_fields__):
            raise invalid("body", "must set at least one of " + ", ".join(changes.__struct_fields__))
        user_id, task_id, store = caller(request), path_task_id(request), task_store(request)
        stored = await store.update(user_id, task_id, if_match(request, task_id), changes)
        if stored is None:
            raise await store.missing_or_stale(user_id, task_id)
        return task_response(request, stored)

    patch = put

    async def delete(self, request: Request[TasksState]) -> Response:
        user_id, task_id, store = caller(request), path_task_id(request), task_store(request)
        deleted = await store.delete(user_id, task_id, if_match(request, task_id))
        if deleted is None:
            raise await store.missing_or_stale(user_id, task_id)
        stored, subtasks = deleted
        envelope = TaskDeletedEnvelope(stored.task, DeletedMeta(request_id(request.scope), subtasks))
        return json_response(request.scope, 200, envelope, {"etag": stored.etag()})


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
    "Delete a task and its subtasks; answers it as it was",
    200,
    TaskDeletedEnvelope,
    (*API_ERRORS, 404, 412, 422),
    invalid=FieldError("If-Match", IF_MATCH_RULE),
    ok_example=TaskDeletedEnvelope(examples.TASK, DeletedMeta(EXAMPLE_META.request_id, 0)),
    parameters=[IF_MATCH],
    ok_headers=TASK_HEADERS,
)


class TaskCompletion(Endpoint):
    """`/api/{user_id}/tasks/{task_id}/complete`: toggle, or set with `{"completed": bool}`."""

    async def patch(self, request: Request[TasksState]) -> Response:
        body = await read_json(request, TaskComplete, optional=True)
        completed = None if body is None or body.completed is UNSET else body.completed
        user_id, task_id, store = caller(request), path_task_id(request), task_store(request)
        stored = await store.set_completed(user_id, task_id, if_match(request, task_id), completed)
        if stored is None:
            raise await store.missing_or_stale(user_id, task_id)
        return task_response(request, stored)


COMPLETE_TASK = _task_write(
    "completeTask",
    "Toggle `completed` (no body, or `{}`), or set it",
    examples.DONE,
    TaskComplete,
    examples.COMPLETE,
    body_required=False,
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
