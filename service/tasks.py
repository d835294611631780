"""The task routes: `/api/{user_id}/tasks` and below. The caller is already verified and owns the path."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from typing import Any
from urllib.parse import quote

import asyncpg
import msgspec
from msgspec import UNSET
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .bodies import read_json
from .cursors import CursorCodec
from .envelope import json_response, meta, request_id
from .errors import TASK_NOT_FOUND, Conflict, NotFound, PreconditionFailed, invalid
from .ids import uuid7
from .schemas import (
    TITLE_MAX,
    WHITESPACE,
    ListMeta,
    TaskComplete,
    TaskCreate,
    TaskEnvelope,
    TaskListEnvelope,
    TaskRead,
    TaskUpdate,
)
from .task_store import SORTS, ListFilter, TaskStore, utc_now

MAX_IDEMPOTENCY_KEY = 255
# Visible ASCII only: what survives every HTTP hop unchanged (the OpenAPI document states the same).
IDEMPOTENCY_KEY_PATTERN = re.compile(f"[\\x21-\\x7e]{{1,{MAX_IDEMPOTENCY_KEY}}}")
MAX_QUERY_TEXT = 200
MAX_LIMIT = 200
LIST_PARAMS = frozenset({"completed", "q", "sort", "limit", "cursor"})

_encode = msgspec.json.Encoder().encode


class StoredCreate(msgspec.Struct):
    """What an Idempotency-Key replays: the first response's task and ETag."""

    etag: str
    task: TaskRead


_decode_stored = msgspec.json.Decoder(StoredCreate).decode


def _user_id(request: Request) -> str:
    user_id: str = request.scope["user"].user_id
    return user_id


def _store(request: Request) -> TaskStore:
    store: TaskStore = request.state.store
    return store


def _task_id(request: Request) -> uuid.UUID:
    """The path's task id; anything but a UUID cannot name a task, so it is a 404 like any other."""
    try:
        return uuid.UUID(request.path_params["task_id"])
    except ValueError:
        raise NotFound(TASK_NOT_FOUND) from None


def _read(row: asyncpg.Record) -> TaskRead:
    return TaskRead(
        id=str(row["id"]),
        title=row["title"],
        description=row["description"],
        completed=row["completed"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def etag(version: int) -> str:
    return f'"{version}"'


def _task_response(request: Request, row: asyncpg.Record, status: int = 200) -> Response:
    envelope = TaskEnvelope(_read(row), meta(request.scope))
    return json_response(request.scope, status, envelope, {"etag": etag(row["version"])})


def _location(user_id: str, task_id: str) -> str:
    return f"/api/{quote(user_id, safe='')}/tasks/{task_id}"


def _clean_title(title: str) -> str:
    """The stored title: trimmed as schemas.TITLE_PATTERN documents it."""
    title = title.strip(WHITESPACE)
    if not title:
        raise invalid("title", "must not be blank")
    if len(title) > TITLE_MAX:
        raise invalid("title", f"must be at most {TITLE_MAX} characters")
    if "\x00" in title:
        raise invalid("title", "must not contain NUL characters")
    return title


def _check_description(description: str | None) -> None:
    if description is not None and "\x00" in description:
        raise invalid("description", "must not contain NUL characters")


def _if_match(request: Request) -> list[int] | None:
    """The versions If-Match accepts: None for no header or `*`; strong comparison, so W/ never matches."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    versions = []
    for tag in header.split(","):
        tag = tag.strip()
        inner = tag[1:-1]
        if (
            len(tag) > 2
            and tag[0] == tag[-1] == '"'
            and inner.isascii()
            and inner.isdigit()
            and len(inner) < 10
        ):
            versions.append(int(inner))
    return versions


def _none_match(request: Request, current: str) -> bool:
    """True when If-None-Match names the current ETag (weak comparison, as RFC 9110 says for it)."""
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == current for tag in header.split(","))


async def _missing_or_stale(store: TaskStore, user_id: str, task_id: uuid.UUID) -> Exception:
    """Why a conditional write touched no row: the task is gone (404) or its ETag moved on (412)."""
    if await store.exists(user_id, task_id):
        return PreconditionFailed()
    return NotFound(TASK_NOT_FOUND)


class TaskCollection(HTTPEndpoint):
    """`/api/{user_id}/tasks`: list and create."""

    async def get(self, request: Request) -> Response:
        page = _list_filter(request)
        rows = await _store(request).list(_user_id(request), page)
        more = len(rows) > page.limit
        rows = rows[: page.limit]
        next_cursor = None
        if more:
            last = rows[-1]
            codec: CursorCodec = request.state.cursors
            next_cursor = codec.encode(last[SORTS[page.sort].field], last["id"], _binding(request, page))
        page_meta = ListMeta(
            request_id(request.scope), count=len(rows), limit=page.limit, next_cursor=next_cursor
        )
        return json_response(request.scope, 200, TaskListEnvelope([_read(row) for row in rows], page_meta))

    async def post(self, request: Request) -> Response:
        payload = await read_json(request, TaskCreate)
        assert payload is not None
        title = _clean_title(payload.title)
        _check_description(payload.description)
        key = _idempotency_key(request)
        user_id, store = _user_id(request), _store(request)
        now = utc_now()
        task_id = uuid7(now)
        if key is None:
            row = await store.create(user_id, task_id, title, payload.description, now)
            return _created(request, _read(row), etag(row["version"]))

        request_hash = hashlib.sha256(_encode(payload)).digest()
        if not await store.claim_key(user_id, key, request_hash):
            return await _replay(request, store, user_id, key, request_hash)
        task = TaskRead(str(task_id), title, payload.description, False, user_id, now, now)
        stored = StoredCreate(etag=etag(1), task=task)
        try:
            row = await store.create(
                user_id, task_id, title, payload.description, now, key=key, response=_encode(stored)
            )
        except BaseException:
            # Let a retry through at once rather than after the in-flight timeout.
            await asyncio.shield(store.release_key(user_id, key))
            raise
        return _created(request, _read(row), etag(row["version"]))


def _created(request: Request, task: TaskRead, tag: str, *, replayed: bool = False) -> Response:
    headers = {"etag": tag, "location": _location(task.user_id, task.id)}
    if replayed:
        headers["idempotent-replayed"] = "true"
    return json_response(request.scope, 201, TaskEnvelope(task, meta(request.scope)), headers)


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise invalid("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} visible ASCII characters")
    return key


async def _replay(
    request: Request, store: TaskStore, user_id: str, key: str, request_hash: bytes
) -> Response:
    found = await store.find_key(user_id, key)
    if found is not None and found["request_hash"] != request_hash:
        raise Conflict("This Idempotency-Key was already used with a different request body")
    if found is None or found["status"] is None:
        raise Conflict("A request with this Idempotency-Key is still in progress")
    stored = _decode_stored(found["response"])
    return _created(request, stored.task, stored.etag, replayed=True)


def _binding(request: Request, page: ListFilter) -> tuple[Any, ...]:
    return (_user_id(request), page.sort, page.completed, page.text)


def _list_filter(request: Request) -> ListFilter:
    """Parse the listing's query: each known parameter at most once and never empty."""
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in LIST_PARAMS:
            continue
        if name in params:
            raise invalid(name, "must be given at most once")
        if value == "":
            raise invalid(name, "must not be empty")
        params[name] = value

    completed = None
    if "completed" in params:
        if params["completed"] not in ("true", "false"):
            raise invalid("completed", "must be true or false")
        completed = params["completed"] == "true"
    sort = params.get("sort", "-created_at")
    if sort not in SORTS:
        raise invalid("sort", f"must be one of {', '.join(SORTS)}")
    limit = 50
    if "limit" in params:
        raw = params["limit"]
        if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT):
            raise invalid("limit", f"must be an integer from 1 to {MAX_LIMIT}")
        limit = int(raw)
    text = params.get("q")
    if text is not None and (len(text) > MAX_QUERY_TEXT or "\x00" in text):
        raise invalid("q", f"must be at most {MAX_QUERY_TEXT} characters, without NUL")
    page = ListFilter(sort=sort, limit=limit, completed=completed, text=text)
    if "cursor" in params:
        codec: CursorCodec = request.state.cursors
        after = codec.decode(
            params["cursor"], _binding(request, page), timestamp=SORTS[sort].field != "title"
        )
        page = ListFilter(sort=sort, limit=limit, completed=completed, text=text, after=after)
    return page


class TaskItem(HTTPEndpoint):
    """`/api/{user_id}/tasks/{task_id}`: read, update (PUT and PATCH alike), delete."""

    async def get(self, request: Request) -> Response:
        row = await _store(request).get(_user_id(request), _task_id(request))
        if row is None:
            raise NotFound(TASK_NOT_FOUND)
        tag = etag(row["version"])
        if _none_match(request, tag):
            return Response(status_code=304, headers={"etag": tag, "x-request-id": request_id(request.scope)})
        return _task_response(request, row)

    async def put(self, request: Request) -> Response:
        changes = await read_json(request, TaskUpdate)
        assert changes is not None
        if changes.title is UNSET and changes.description is UNSET and changes.completed is UNSET:
            raise invalid("body", "must set at least one of title, description, completed")
        title = None if changes.title is UNSET else _clean_title(changes.title)
        if changes.description is not UNSET:
            _check_description(changes.description)
        user_id, task_id, store = _user_id(request), _task_id(request), _store(request)
        row = await store.update(
            user_id,
            task_id,
            _if_match(request),
            title=title,
            set_description=changes.description is not UNSET,
            description=None if changes.description is UNSET else changes.description,
            completed=None if changes.completed is UNSET else changes.completed,
        )
        if row is None:
            raise await _missing_or_stale(store, user_id, task_id)
        return _task_response(request, row)

    patch = put

    async def delete(self, request: Request) -> Response:
        user_id, task_id, store = _user_id(request), _task_id(request), _store(request)
        row = await store.delete(user_id, task_id, _if_match(request))
        if row is None:
            raise await _missing_or_stale(store, user_id, task_id)
        return _task_response(request, row)


class TaskCompletion(HTTPEndpoint):
    """`/api/{user_id}/tasks/{task_id}/complete`: toggle, or set with `{"completed": bool}`."""

    async def patch(self, request: Request) -> Response:
        body = await read_json(request, TaskComplete, optional=True)
        completed = None if body is None or body.completed is UNSET else body.completed
        user_id, task_id, store = _user_id(request), _task_id(request), _store(request)
        row = await store.set_completed(user_id, task_id, _if_match(request), completed)
        if row is None:
            raise await _missing_or_stale(store, user_id, task_id)
        return _task_response(request, row)


routes = [
    Route("/api/{user_id}/tasks", TaskCollection),
    Route("/api/{user_id}/tasks/{task_id}", TaskItem),
    Route("/api/{user_id}/tasks/{task_id}/complete", TaskCompletion),
]
