"""Conditional requests on one resource of an id and a version: its ETag, If-None-Match (304), If-Match (412)."""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any

from starlette.requests import Request

from service.auth.signing import b64encode
from service.web.errors import invalid

IF_MATCH_RULE = 'must be * or a list of quoted ETags, such as "3-AbCdEfGh"'
# RFC 9110's entity-tag list (etagc without obs-text): the OpenAPI document states the same pattern.
_TAG = r'(W/)?"([!#-~]*)"'
ETAG_LIST = re.compile(rf"[ \t]*{_TAG}(?:[ \t]*,[ \t]*{_TAG})*[ \t]*")
ETAG_LIST_PATTERN = rf"^[ \t]*(?:\*|{_TAG}(?:[ \t]*,[ \t]*{_TAG})*)[ \t]*$"
_ETAG = re.compile(_TAG)
# Versions are int4 in the database; a longer number cannot be one.
_MAX_VERSION_DIGITS = 9


def _task_tag(task_id: uuid.UUID) -> str:
    """A short fingerprint of the id: it keeps version 1 of one task from matching version 1 of another."""
    digest = hashlib.blake2b(task_id.bytes, digest_size=6).digest()
    return b64encode(digest)


def etag(task_id: uuid.UUID, version: int) -> str:
    """The task's strong ETag: every write bumps the version, and the id makes it the task's own."""
    return f'"{version}-{_task_tag(task_id)}"'


def if_match_versions(header: str | None, task_id: uuid.UUID) -> list[int] | None:
    """The versions of this task that If-Match accepts: None for no header or `*`.

    Strong comparison (RFC 9110 §13.1.1), so `W/` tags never match; tags of other tasks or not of
    our making match nothing, and an empty list then fails the write with 412.
    """
    if header is None or header.strip() == "*":
        return None
    if not ETAG_LIST.fullmatch(header):
        # Not entity-tags at all: a client bug, not a stale copy, so not "the task has changed".
        raise invalid("If-Match", IF_MATCH_RULE)
    own = _task_tag(task_id)
    versions = []
    for weak, tag in _ETAG.findall(header):
        if weak:
            continue  # well-formed, and never a strong match
        version, dash, fingerprint = tag.partition("-")
        if dash and fingerprint == own and version.isdigit() and len(version) <= _MAX_VERSION_DIGITS:
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
