"""`POST /api/{user_id}/tasks/{task_id}/move`: a task's new place among its siblings, under a parent, or in a list."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from service.openapi.operation import API_ERRORS, BODY_ERRORS, EXAMPLE_META, Operation
from service.tasks import documentation as examples
from service.tasks.documentation import IF_MATCH, TASK_HEADERS, OneAnchorMove
from service.tasks.fields import ANCHOR_RULE
from service.tasks.order.move import move
from service.tasks.requests import path_task_id, task_response, task_store
from service.tasks.schemas import TaskEnvelope, TaskMove
from service.tasks.state import TasksState
from service.web.bodies import read_json
from service.web.conditional import if_match
from service.web.endpoint import Endpoint, caller
from service.web.schemas import FieldError


class TaskMoving(Endpoint):
    """Place the task (and its subtasks with it): beside a sibling, first under a parent, or first in a list."""

    async def post(self, request: Request[TasksState]) -> Response:
        placement = await read_json(request, TaskMove)
        task_id = path_task_id(request)
        stored = await move(
            task_store(request).runner, caller(request), task_id, if_match(request, task_id), placement
        )
        return task_response(request, stored)


MOVE_TASK = Operation(
    "moveTask",
    "Move a task with its subtasks: right before or after a task, first under a parent, or first in a list",
    200,
    TaskEnvelope,
    (*API_ERRORS, *BODY_ERRORS, 404, 412),
    ok_example=TaskEnvelope(examples.MOVED, EXAMPLE_META),
    body=OneAnchorMove,
    body_example=examples.MOVE,
    invalid=FieldError("after", ANCHOR_RULE),
    parameters=[IF_MATCH],
    ok_headers=TASK_HEADERS,
)
