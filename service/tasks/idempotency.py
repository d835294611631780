"""Idempotency-Key on task creation: claim the key, create once, replay the stored response."""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from datetime import datetime
from typing import Any

import msgspec
from starlette.requests import Request

from service.tasks.schemas import TaskCreate
from service.tasks.store import StoredTask, TaskStore
from service.web.errors import Conflict, invalid

MAX_IDEMPOTENCY_KEY = 255
# Visible ASCII only: what survives every HTTP hop unchanged (the OpenAPI document states the same).
IDEMPOTENCY_KEY_PATTERN = re.compile(f"[\\x21-\\x7e]{{1,{MAX_IDEMPOTENCY_KEY}}}")

_encode = msgspec.json.Encoder().encode


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
    if not await store.claim_key(user_id, key, request_hash):
        return await _replay(store, user_id, key, request_hash), True
    try:
        return await store.create(user_id, task_id, now, body, key=key), False
    except BaseException:
        # Let a retry through at once rather than after the in-flight timeout.
        await asyncio.shield(store.release_key(user_id, key))
        raise


async def _replay(store: TaskStore, user_id: str, key: str, request_hash: bytes) -> StoredTask:
    found = await store.find_key(user_id, key)
    if found is not None and found.request_hash != request_hash:
        raise Conflict("This Idempotency-Key was already used with a different request body")
    if found is None or found.status is None or found.response is None:
        raise Conflict("A request with this Idempotency-Key is still in progress")
    return StoredTask.from_json(found.response)
