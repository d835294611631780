"""The list routes: `/api/{user_id}/lists` and below. The caller is already verified and owns the path."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from service.lists import documentation as examples
from service.lists.columns import StoredList
from service.lists.documentation import (
    BAD_NAME,
    ETAG,
    IF_MATCH,
    LIST_HEADERS,
    LIST_ID,
    LIST_LINKS,
    OneAnchorListMove,
)
from service.lists.fields import LIST_ANCHOR_RULE
from service.lists.schemas import (
    DeletedListEnvelope,
    ListCountMeta,
    ListCreate,
    ListDeletionMeta,
    ListEnvelope,
    ListMove,
    ListsEnvelope,
    ListUpdate,
)
from service.lists.state import ListsState
from service.lists.store import ListStore
from service.lists.transaction import LIST_NOT_FOUND
from service.openapi.operation import (
    API_ERRORS,
    BODY_ERRORS,
    EXAMPLE_META,
    IF_NONE_MATCH,
    REQUEST_ID,
    ApiRoute,
    Operation,
    header,
)
from service.tasks.columns import utc_now
from service.tasks.ids import uuid7
from service.web.bodies import read_json
from service.web.conditional import IF_MATCH_RULE, if_match, none_match
from service.web.endpoint import Endpoint, caller, path_id
from service.web.envelope import json_response, meta, request_id
from service.web.errors import NotFound, invalid
from service.web.schemas import FieldError


def _store(request: Request[ListsState]) -> ListStore:
    return request.state["lists"]


def _list_id(request: Request[ListsState]) -> uuid.UUID:
    return path_id(request, "list_id", LIST_NOT_FOUND)


def _list_response(
    request: Request[ListsState], stored: StoredList, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    envelope = ListEnvelope(stored.task_list, meta(request.scope))
    return json_response(request.scope, status, envelope, {"etag": stored.etag(), **(headers or {})})


class ListCollection(Endpoint):
    """`/api/{user_id}/lists`: all of them, and create."""

    async def get(self, request: Request[ListsState]) -> Response:
        found = await _store(request).all(caller(request))
        list_meta = ListCountMeta(request_id(request.scope), count=len(found))
        return json_response(request.scope, 200, ListsEnvelope(found, list_meta))

    async def post(self, request: Request[ListsState]) -> Response:
        body = await read_json(request, ListCreate)
        user_id = caller(request)
        now = utc_now()
        stored = await _store(request).create(user_id, uuid7(now), now, body)
        location = f"/api/{quote(user_id, safe='')}/lists/{stored.task_list.id}"
        return _list_response(request, stored, 201, {"location": location})


LIST_LISTS = Operation(
    "listLists",
    "Every one of one's lists, in their order",
    200,
    ListsEnvelope,
    API_ERRORS,
    ok_example=ListsEnvelope([examples.LIST], ListCountMeta(EXAMPLE_META.request_id, count=1)),
)
CREATE_LIST = Operation(
    "createList",
    "Create a list; it goes last (409 QUOTA_EXCEEDED past MAX_LISTS_PER_USER)",
    201,
    ListEnvelope,
    (*API_ERRORS, *BODY_ERRORS, 409),
    ok_example=ListEnvelope(examples.LIST, EXAMPLE_META),
    body=ListCreate,
    body_example=examples.CREATE,
    invalid=BAD_NAME,
    ok_headers={**LIST_HEADERS, "Location": header("The new list's URL")},
    links=LIST_LINKS,
)


class ListItem(Endpoint):
    """`/api/{user_id}/lists/{list_id}`: read, rename (PUT and PATCH alike), delete with its tasks."""

    async def get(self, request: Request[ListsState]) -> Response:
        stored = await _store(request).get(caller(request), _list_id(request))
        if stored is None:
            raise NotFound(LIST_NOT_FOUND)
        tag = stored.etag()
        if none_match(request.headers.get("if-none-match"), tag):
            return Response(status_code=304, headers={"etag": tag, "x-request-id": request_id(request.scope)})
        return _list_response(request, stored)

    async def put(self, request: Request[ListsState]) -> Response:
        body = await read_json(request, ListUpdate)
        list_id = _list_id(request)
        stored = await _store(request).update(caller(request), list_id, if_match(request, list_id), body.name)
        return _list_response(request, stored)

    patch = put

    async def delete(self, request: Request[ListsState]) -> Response:
        list_id = _list_id(request)
        deleted = await _store(request).delete(caller(request), list_id, if_match(request, list_id))
        deletion_meta = ListDeletionMeta(request_id(request.scope), deleted_tasks=deleted.tasks)
        envelope = DeletedListEnvelope(deleted.stored.task_list, deletion_meta)
        return json_response(request.scope, 200, envelope, {"etag": deleted.stored.etag()})


GET_LIST = Operation(
    "getList",
    "Read a list",
    200,
    ListEnvelope,
    (*API_ERRORS, 404),
    ok_example=ListEnvelope(examples.LIST, EXAMPLE_META),
    parameters=[LIST_ID, IF_NONE_MATCH],
    ok_headers=LIST_HEADERS,
    extra_responses={
        "304": {"description": "Not modified", "headers": {"ETag": ETAG, "X-Request-ID": REQUEST_ID}}
    },
)


def _rename(operation_id: str, summary: str) -> Operation:
    """PUT and PATCH are one handler: a list's one writable field is its name."""
    return Operation(
        operation_id,
        summary,
        200,
        ListEnvelope,
        (*API_ERRORS, *BODY_ERRORS, 404, 412),
        ok_example=ListEnvelope(examples.RENAMED, EXAMPLE_META),
        body=ListUpdate,
        body_example=examples.RENAME,
        invalid=BAD_NAME,
        parameters=[LIST_ID, IF_MATCH],
        ok_headers=LIST_HEADERS,
    )


REPLACE_LIST = _rename("replaceList", "Rename a list (like PATCH)")
UPDATE_LIST = _rename("updateList", "Rename a list")
DELETE_LIST = Operation(
    "deleteList",
    "Delete a list and every task in it, in one transaction; answers the list as it was",
    200,
    DeletedListEnvelope,
    (*API_ERRORS, 404, 412, 422),
    invalid=FieldError("If-Match", IF_MATCH_RULE),
    ok_example=DeletedListEnvelope(examples.LIST, ListDeletionMeta(EXAMPLE_META.request_id, deleted_tasks=4)),
    parameters=[LIST_ID, IF_MATCH],
    ok_headers=LIST_HEADERS,
)


class ListMoving(Endpoint):
    """`/api/{user_id}/lists/{list_id}/move`: place the list right before or after another one."""

    async def post(self, request: Request[ListsState]) -> Response:
        side, anchor = (await read_json(request, ListMove)).anchor()
        list_id = _list_id(request)
        if anchor == list_id:
            raise invalid(side, LIST_ANCHOR_RULE)
        stored = await _store(request).move(
            caller(request), list_id, if_match(request, list_id), anchor, side == "after"
        )
        return _list_response(request, stored)


MOVE_LIST = Operation(
    "moveList",
    "Place a list right before or after another of one's lists",
    200,
    ListEnvelope,
    (*API_ERRORS, *BODY_ERRORS, 404, 412),
    ok_example=ListEnvelope(examples.MOVED, EXAMPLE_META),
    body=OneAnchorListMove,
    body_example=examples.MOVE,
    invalid=FieldError("after", LIST_ANCHOR_RULE),
    parameters=[LIST_ID, IF_MATCH],
    ok_headers=LIST_HEADERS,
)

routes = [
    ApiRoute("/api/{user_id}/lists", ListCollection, get=LIST_LISTS, post=CREATE_LIST),
    ApiRoute(
        "/api/{user_id}/lists/{list_id}",
        ListItem,
        get=GET_LIST,
        put=REPLACE_LIST,
        patch=UPDATE_LIST,
        delete=DELETE_LIST,
    ),
    ApiRoute("/api/{user_id}/lists/{list_id}/move", ListMoving, post=MOVE_LIST),
]
