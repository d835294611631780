"""The task routes: `/api/{user_id}/tasks` and below. The caller is already verified and owns the path."""

from __future__ import annotations

import uuid
from typing import ClassVar
from urllib.parse import quote

from msgspec import UNSET
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from service.state import AppState
from service.tasks.conditional import etag_of, if_match, missing_or_stale, none_match
from service.tasks.cursors import CursorBinding
from service.tasks.idempotency import create_once, idempotency_key
from service.tasks.ids import uuid7
from service.tasks.schemas import (
    ANCHOR_RULE,
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
    TaskUpdate,
)
from service.tasks.store import StoredTask, TaskStore, utc_now
from service.web.bodies import read_json, read_query
from service.web.envelope import json_response, meta, request_id
from service.web.errors import TASK_NOT_FOUND, NotFound, invalid


def _user_id(request: Request[AppState]) -> str:
    user_id: str = request.scope["user"].user_id
    return user_id


def _store(request: Request[AppState]) -> TaskStore:
    return request.state["store"]


def _task_id(request: Request[AppState]) -> uuid.UUID:
    """The path's task id; anything but a UUID cannot name a task, so it is a 404 like any other."""
    try:
        return uuid.UUID(request.path_params["task_id"])
    except ValueError:
        raise NotFound(TASK_NOT_FOUND) from None


def _task_response(
    request: Request[AppState], stored: StoredTask, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    envelope = TaskEnvelope(stored.task, meta(request.scope))
    return json_response(request.scope, status, envelope, {"etag": etag_of(stored), **(headers or {})})


def _found(stored: StoredTask | None) -> StoredTask:
    if stored is None:
        raise NotFound(TASK_NOT_FOUND)
    return stored


class Endpoint(HTTPEndpoint):
    """HTTPEndpoint with its allowed methods found once per class, not again on every request."""

    _methods: ClassVar[list[str]]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        # Starlette's order, for the same Allow header; HEAD is answered by `get`.
        candidates = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
        cls._methods = [m for m in candidates if hasattr(cls, "get" if m == "HEAD" else m.lower())]

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope, self.receive, self.send = scope, receive, send

    async def dispatch(self) -> None:
        request: Request[AppState] = Request(self.scope, receive=self.receive)
        method = request.method
        if method not in self._methods:
            raise HTTPException(405, headers={"Allow": ", ".join(self._methods)})
        handler = getattr(self, "get" if method == "HEAD" else method.lower())
        response = await handler(request)
        await response(self.scope, self.receive, self.send)


class TaskCollection(Endpoint):
    """`/api/{user_id}/tasks`: list and create."""

    async def get(self, request: Request[AppState]) -> Response:
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

    async def post(self, request: Request[AppState]) -> Response:
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


class TaskItem(Endpoint):
    """`/api/{user_id}/tasks/{task_id}`: read, update (PUT and PATCH alike), delete."""

    async def get(self, request: Request[AppState]) -> Response:
        stored = _found(await _store(request).get(_user_id(request), _task_id(request)))
        tag = etag_of(stored)
        if none_match(request.headers.get("if-none-match"), tag):
            return Response(status_code=304, headers={"etag": tag, "x-request-id": request_id(request.scope)})
        return _task_response(request, stored)

    async def put(self, request: Request[AppState]) -> Response:
        changes = await read_json(request, TaskUpdate)
        if all(getattr(changes, name) is UNSET for name in changes.__struct_fields__):
            raise invalid("body", "must set at least one of " + ", ".join(changes.__struct_fields__))
        user_id, task_id, store = _user_id(request), _task_id(request), _store(request)
        stored = await store.update(user_id, task_id, if_match(request, task_id), changes)
        if stored is None:
            raise await missing_or_stale(store, user_id, task_id)
        return _task_response(request, stored)

    patch = put

    async def delete(self, request: Request[AppState]) -> Response:
        user_id, task_id, store = _user_id(request), _task_id(request), _store(request)
        stored = await store.delete(user_id, task_id, if_match(request, task_id))
        if stored is None:
            raise await missing_or_stale(store, user_id, task_id)
        return _task_response(request, stored)


class TaskCompletion(Endpoint):
    """`/api/{user_id}/tasks/{task_id}/complete`: toggle, or set with `{"completed": bool}`."""

    async def patch(self, request: Request[AppState]) -> Response:
        body = await read_json(request, TaskComplete, optional=True)
        completed = None if body is None or body.completed is UNSET else body.completed
        user_id, task_id, store = _user_id(request), _task_id(request), _store(request)
        stored = await store.set_completed(user_id, task_id, if_match(request, task_id), completed)
        if stored is None:
            raise await missing_or_stale(store, user_id, task_id)
        return _task_response(request, stored)


class TaskMoving(Endpoint):
    """`/api/{user_id}/tasks/{task_id}/move`: place the task right before or after another one."""

    async def post(self, request: Request[AppState]) -> Response:
        side, anchor = (await read_json(request, TaskMove)).anchor()
        task_id = _task_id(request)
        if anchor == task_id:
            raise invalid(side, ANCHOR_RULE)
        store = _store(request)
        stored = await store.move(
            _user_id(request), task_id, if_match(request, task_id), anchor, side == "after"
        )
        return _task_response(request, stored)


class TaskStatistics(Endpoint):
    """`/api/{user_id}/tasks/stats`: the user's tasks counted."""

    async def get(self, request: Request[AppState]) -> Response:
        stats = await _store(request).stats(_user_id(request))
        return json_response(request.scope, 200, StatsEnvelope(stats, meta(request.scope)))


class CompletedClearing(Endpoint):
    """`/api/{user_id}/tasks/clear-completed`: delete every completed task, in one transaction."""

    async def post(self, request: Request[AppState]) -> Response:
        await read_json(request, ClearCompleted, optional=True)
        deleted = await _store(request).clear_completed(_user_id(request))
        return json_response(request.scope, 200, ClearedEnvelope(Cleared(deleted), meta(request.scope)))


routes = [
    Route("/api/{user_id}/tasks", TaskCollection),
    # Before {task_id}: these words are routes, not task ids.
    Route("/api/{user_id}/tasks/stats", TaskStatistics),
    Route("/api/{user_id}/tasks/clear-completed", CompletedClearing),
    Route("/api/{user_id}/tasks/{task_id}", TaskItem),
    Route("/api/{user_id}/tasks/{task_id}/complete", TaskCompletion),
    Route("/api/{user_id}/tasks/{task_id}/move", TaskMoving),
]
