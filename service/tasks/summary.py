"""The routes over many tasks at once: `/tasks/stats` and `/tasks/clear-completed`."""

from __future__ import annotations

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response

from service.openapi.operation import API_ERRORS, BODY_ERRORS, EXAMPLE_META, Operation, query_parameters
from service.tasks import documentation as examples
from service.tasks.fields import LIST_FILTER_RULE, LIST_RULE
from service.tasks.requests import task_store
from service.tasks.schemas import ClearCompleted, Cleared, ClearedEnvelope, StatsEnvelope, StatsQuery
from service.tasks.state import TasksState
from service.web.bodies import read_json, read_query
from service.web.endpoint import Endpoint, caller
from service.web.envelope import json_response, meta
from service.web.schemas import FieldError


class TaskStatistics(Endpoint):
    """`/api/{user_id}/tasks/stats`: the user's tasks counted, or one list's."""

    async def get(self, request: Request[TasksState]) -> Response:
        query = read_query(request, StatsQuery)
        list_filter = None if query.list_id is UNSET else query.list_id
        stats = await task_store(request).stats(caller(request), list_filter)
        return json_response(request.scope, 200, StatsEnvelope(stats, meta(request.scope)))


TASK_STATS = Operation(
    "taskStats",
    "Count one's tasks (or one list's): total, active, completed, overdue, tags, and each list",
    200,
    StatsEnvelope,
    (*API_ERRORS, 422),
    ok_example=StatsEnvelope(examples.STATS, EXAMPLE_META),
    invalid=FieldError("list_id", LIST_FILTER_RULE),
    parameters=query_parameters(StatsQuery),
)


class CompletedClearing(Endpoint):
    """`/api/{user_id}/tasks/clear-completed`: delete every completed task (of one list), in one transaction."""

    async def post(self, request: Request[TasksState]) -> Response:
        body = await read_json(request, ClearCompleted, optional=True)
        list_id = UNSET if body is None else body.list_id
        deleted = await task_store(request).clear_completed(caller(request), list_id)
        return json_response(request.scope, 200, ClearedEnvelope(Cleared(deleted), meta(request.scope)))


CLEAR_COMPLETED = Operation(
    "clearCompleted",
    "Delete every completed task (with `list_id`, one list's; null: the Inbox's), in one transaction",
    200,
    ClearedEnvelope,
    (*API_ERRORS, *BODY_ERRORS),
    ok_example=ClearedEnvelope(Cleared(deleted=3), EXAMPLE_META),
    body=ClearCompleted,
    body_example=ClearCompleted(),
    body_required=False,
    invalid=FieldError("list_id", LIST_RULE),
)
