"""Conditional requests on one task: its ETag, If-None-Match (304) and If-Match (412)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from starlette.requests import Request

from service.auth.signing import b64encode
from service.tasks.columns import StoredTask
from service.tasks.store import TaskStore
from service.web.errors import TASK_NOT_FOUND, NotFound, PreconditionFailed

# Versions are int4 in the database; a longer number cannot be one.
_MAX_VERSION_DIGITS = 9


def _task_tag(task_id: uuid.UUID) -> str:
    """A short fingerprint of the id: it keeps version 1 of one task from matching version 1 of another."""
    digest = hashlib.blake2b(task_id.bytes, digest_size=6).digest()
    return b64encode(digest)


def etag(task_id: uuid.UUID, version: int) -> str:
    """The task's strong ETag: every write bumps the version, and the id makes it the task's own."""
    return f'"{version}-{_task_tag(task_id)}"'


def etag_of(stored: StoredTask) -> str:
    return etag(stored.task.id, stored.version)


def if_match_versions(header: str | None, task_id: uuid.UUID) -> list[int] | None:
    """The versions of this task that If-Match accepts: None for no header or `*`.

    Strong comparison (RFC 9110 §13.1.1), so `W/` tags never match; tags of other tasks or not of
    our making match nothing, and an empty list then fails the write with 412.
    """
    if header is None or header.strip() == "*":
        return None
    own = _task_tag(task_id)
    versions = []
    for tag in header.split(","):
        tag = tag.strip()
        if len(tag) < 2 or tag[0] != '"' or tag[-1] != '"':
            continue
        version, dash, fingerprint = tag[1:-1].partition("-")
        if (
            dash
            and fingerprint == own
            and version.isascii()
            and version.isdigit()
            and len(version) <= _MAX_VERSION_DIGITS
        ):
            versions.append(int(version))
    return versions


def if_match(request: Request[Any], task_id: uuid.UUID) -> list[int] | None:
    return if_match_versions(request.headers.get("if-match"), task_id)


def none_match(header: str | None, current: str) -> bool:
    """True when If-None-Match names the current ETag (weak comparison, as RFC 9110 says for it)."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == current for tag in header.split(","))


async def missing_or_stale(store: TaskStore, user_id: str, task_id: uuid.UUID) -> Exception:
    """Why a conditional write touched no row: the task is gone (404) or its ETag moved on (412)."""
    if await store.exists(user_id, task_id):
        return PreconditionFailed()
    return NotFound(TASK_NOT_FOUND)
