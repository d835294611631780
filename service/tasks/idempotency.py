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
from sqlalchemy import Integer, LargeBinary, Text, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql.expression import literal_column
from starlette.requests import Request

from service.db.statements import Query, Runner, param
from service.tasks.columns import USER, StoredTask, keys
from service.tasks.schemas import TaskCreate
from service.tasks.store import TaskStore
from service.web.errors import RETRY_KEYS, Conflict, TooManyRequests, invalid

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
# A user holds at most max_keys keys (live, or expired and not purged yet, at most an hour more):
# counting them stops at the bound, an index-only scan of the primary key's user prefix.
_MAX_KEYS = param("max_keys", Integer)
_held = (
    select(func.count().label("n"))
    .select_from(
        select(literal_column("1"))
        .select_from(keys)
        .where(keys.c.user_id == USER)
        .limit(_MAX_KEYS)
        .subquery()
    )
    .cte("held")
)
_claim = insert(keys).from_select(
    ["user_id", "key", "request_hash"],
    select(USER, param("key", Text), param("request_hash", LargeBinary)).where(
        select(_held.c.n).scalar_subquery() < _MAX_KEYS
    ),
)
_claimed = (
    _claim.on_conflict_do_update(
        index_elements=[keys.c.user_id, keys.c.key],
        set_={
            "request_hash": _claim.excluded.request_hash,
            "status": None,
            "response": None,
            "created_at": func.now(),
        },
        where=_expired | _abandoned,
    )
    .returning(keys.c.key)
    .cte("claimed")
)
# Whether the key was taken for this request, and whether the user was at the bound (a new key
# is then refused; an existing one is still found and replayed).
CLAIM_KEY = Query.of(
    select(
        select(func.count()).select_from(_claimed).scalar_subquery().label("claimed"),
        select(_held.c.n).scalar_subquery().label("held"),
    ).add_cte(_claimed)
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


async def claim(
    runner: Runner, user_id: str, key: str, request_hash: bytes, max_keys: int
) -> tuple[bool, bool]:
    """Take an idempotency key for a new request: (taken, whether the user holds `max_keys` already)."""
    row = await runner.one(CLAIM_KEY, user_id=user_id, key=key, request_hash=request_hash, max_keys=max_keys)
    assert row is not None  # a SELECT without FROM returns its one row
    return bool(row["claimed"]), row["held"] >= max_keys


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
    claimed, full = await claim(store.runner, user_id, key, request_hash, store.max_keys)
    if not claimed:
        return await _replay(store, user_id, key, request_hash, full), True
    try:
        return await store.create(user_id, task_id, now, body, key=key), False
    except BaseException:
        # Let a retry through at once rather than after the in-flight timeout.
        await asyncio.shield(release(store.runner, user_id, key))
        raise


async def _replay(store: TaskStore, user_id: str, key: str, request_hash: bytes, full: bool) -> StoredTask:
    found = await find(store.runner, user_id, key)
    if found is None and full:
        raise TooManyRequests(
            f"You hold {store.max_keys:,} Idempotency-Keys from the last 24 hours, the most kept per user:"
            " retry this one later, or send it without a key",
            headers={"retry-after": RETRY_KEYS},
        )
    if found is not None and found.request_hash != request_hash:
        raise Conflict("This Idempotency-Key was already used with a different request body")
    if found is None or found.status is None or found.response is None:
        raise Conflict("A request with this Idempotency-Key is still in progress")
    return StoredTask.from_json(found.response)
