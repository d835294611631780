"""`GET /api/{user_id}/tasks/changes`: what changed in the user's tasks since a sync token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.state import AppState
from service.sync.schemas import (
    SINCE_RULE,
    Change,
    ChangesEnvelope,
    ChangesMeta,
    ChangesQuery,
    Deletion,
    Upsert,
)
from service.sync.tokens import Position, SyncTokens
from service.tasks.store import ChangeStore, Deleted
from service.web.bodies import read_query
from service.web.envelope import json_response, request_id
from service.web.errors import SyncExpired, invalid


def since_position(tokens: SyncTokens, user_id: str, token: str, retention: int) -> Position:
    """The position a `since` token names: 422 if it is not this user's, 410 if it is too old."""
    try:
        position = tokens.decode(user_id, token)
    except ValueError:
        raise invalid("since", SINCE_RULE) from None
    if datetime.now(UTC) - position.at > timedelta(seconds=retention):
        raise SyncExpired()
    return position


async def changes(request: Request[AppState]) -> Response:
    user_id: str = request.scope["user"].user_id
    query = read_query(request, ChangesQuery)
    tokens: SyncTokens = request.state["sync_tokens"]
    since = None
    if query.since is not UNSET:
        since = since_position(tokens, user_id, query.since, request.state["sync_retention"])
    feed: ChangeStore = request.state["changes"]
    page = await feed.changes(user_id, None if since is None else since.seq, query.limit + 1)
    if since is not None and since.seq > page.head:
        # The database is behind the token (restored from a backup): only a full sync is safe.
        raise SyncExpired("This sync token is ahead of the server's history; start over with a full sync")
    entries, has_more = page.changes[: query.limit], len(page.changes) > query.limit
    if has_more:
        # The client is current up to this page's last change; the time it vouches for stays the
        # one its walk through the pages started from (a full sync starts now).
        position = Position(entries[-1].seq, page.read_at if since is None else since.at)
    else:
        # Everything up to the snapshot's latest number is in hand, as of the snapshot.
        position = Position(page.head, page.read_at)
    data: list[Change] = [
        Deletion(entry.change.id, entry.change.deleted_at)
        if isinstance(entry.change, Deleted)
        else Upsert(entry.change)
        for entry in entries
    ]
    meta = ChangesMeta(
        request_id(request.scope),
        count=len(data),
        limit=query.limit,
        next_since=tokens.encode(user_id, position),
        has_more=has_more,
    )
    return json_response(request.scope, 200, ChangesEnvelope(data, meta))


routes = [Route("/api/{user_id}/tasks/changes", changes, methods=["GET"])]
