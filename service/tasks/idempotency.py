"""Idempotency-Key on task creation: claim the key, create once, replay the stored response.

The key rows' SQL lives here; the statement that creates a task also completes its key (store.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import LargeBinary, Text, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.expression import literal_column
from starlette.requests import Request

from service.db.statements import Query, Runner, param
from service.tasks.columns import USER, StoredTask, keys
from service.tasks.schemas import TaskCreate
from service.tasks.store import TaskStore
from service.web.errors import Conflict, invalid

MAX_IDEMPOTENCY_KEY = 255
# Visible ASCII only: what survives every HTTP hop unchanged (the OpenAPI document states the same).
IDEMPOTENCY_KEY_PATTERN = re.compile(f"[\\x21-\\x7e]{{1,{MAX_IDEMPOTENCY_KEY}}}")

_encode = msgspec.json.Encoder().encode

# Abandoned claims (a worker died mid-request) are taken over after this long.
IN_FLIGHT_SECONDS = 60
IDEMPOTENCY_TTL_HOURS = 24

_expired = keys.c.created_at < func.now() - literal_column(f"interval '{IDEMPOTENCY_TTL_HOURS} hours'")
_abandoned = keys.c.status.is_(None) & (
    keys.c.created_at < func.now() - literal_column(f"interval '{IN_FLIGHT_SECONDS} seconds'")
)
_claim = insert(keys).values(
    user_id=USER, key=param("key", Text), request_hash=param("request_hash", LargeBinary)
)
CLAIM_KEY = Query.of(
    _claim.on_conflict_do_update(
        index_elements=[keys.c.user_id, keys.c.key],
        set_={
            "request_hash": _claim.excluded.request_hash,
            "status": None,
            "response": None,
            "created_at": func.now(),
        },
        where=_expired | _abandoned,
    ).returning(keys.c.key)
)
FIND_KEY = Query.of(
    select(keys.c.request_hash, keys.c.status, keys.c.response).where(
        keys.c.user_id == USER, keys.c.key == param("key", Text), ~_expired
    )
)
RELEASE_KEY = Query.of(
    delete(keys).where(keys.c.user_id == USER, keys.c.key == param("key", Text), keys.c.status.is_(None))
)
# Maintenance across all users: it only forgets keys past their 24 hours.
PURGE_KEYS = Query.of(delete(keys).where(_expired))


class KeyState(msgspec.Struct, frozen=True):
    """An Idempotency-Key as stored: in flight while `status` is None, else the created task's JSON."""

    request_hash: bytes
    status: int | None
    response: bytes | None


async def claim(runner: Runner, user_id: str, key: str, request_hash: bytes) -> bool:
    """Take an idempotency key for a new request; False when it is already taken."""
    return await runner.one(CLAIM_KEY, user_id=user_id, key=key, request_hash=request_hash) is not None


async def find(runner: Runner, user_id: str, key: str) -> KeyState | None:
    row = await runner.one(FIND_KEY, user_id=user_id, key=key)
    return None if row is None else KeyState(*row)


async def release(runner: Runner, user_id: str, key: str) -> None:
    await runner.execute(RELEASE_KEY, user_id=user_id, key=key)


async def purge(runner: Runner) -> int:
    """Forget keys past their 24 hours, for every user."""
    return await runner.count(PURGE_KEYS)


def idempotency_key(request: Request[Any]) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY_PATTERN.fullmatch(key):
        raise invalid("Idempotency-Key", f"must be 1-{MAX_IDEMPOTENCY_KEY} visible ASCII characters")
    return key


async def create_once(
    store: TaskStore, user_id: str, key: str, task_id: uuid.UUID, now: datetime, body: TaskCreate
) -> tuple[StoredTask, bool]:
    """The task this key created: made now, or the first request's if this is a retry (True)."""
    # The decoded body, not its bytes: the same request formatted otherwise is still the same.
    request_hash = hashlib.sha256(_encode(body)).digest()
    if not await claim(store.runner, user_id, key, request_hash):
        return await _replay(store, user_id, key, request_hash), True
    try:
        return await store.create(user_id, task_id, now, body, key=key), False
    except BaseException:
        # Let a retry through at once rather than after the in-flight timeout.
        await asyncio.shield(release(store.runner, user_id, key))
        raise


async def _replay(store: TaskStore, user_id: str, key: str, request_hash: bytes) -> StoredTask:
    found = await find(store.runner, user_id, key)
    if found is not None and found.request_hash != request_hash:
        raise Conflict("This Idempotency-Key was already used with a different request body")
    if found is None or found.status is None or found.response is None:
        raise Conflict("A request with this Idempotency-Key is still in progress")
    return StoredTask.from_json(found.response)
