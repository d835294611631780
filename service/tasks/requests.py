"""What every task route reads off its request, and the one-task response they all answer with."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response

from service.tasks.columns import StoredTask
from service.tasks.schemas import TaskEnvelope
from service.tasks.state import TasksState
from service.tasks.store import TaskStore
from service.web.endpoint import path_id
from service.web.envelope import json_response, meta
from service.web.errors import TASK_NOT_FOUND, NotFound


def task_store(request: Request[TasksState]) -> TaskStore:
    return request.state["store"]


def path_task_id(request: Request[TasksState]) -> uuid.UUID:
    return path_id(request, "task_id", TASK_NOT_FOUND)


def task_response(
    request: Request[TasksState], stored: StoredTask, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    envelope = TaskEnvelope(stored.task, meta(request.scope))
    return json_response(request.scope, status, envelope, {"etag": stored.etag(), **(headers or {})})


def found(stored: StoredTask | None) -> StoredTask:
    if stored is None:
        raise NotFound(TASK_NOT_FOUND)
    return stored
