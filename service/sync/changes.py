"""`GET /api/{user_id}/tasks/changes`: what changed in the user's tasks since a sync token."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from msgspec import UNSET
from starlette.requests import Request
from starlette.responses import Response

from service.openapi.operation import API_ERRORS, EXAMPLE_META, ApiRoute, Operation, query_parameters
from service.sync.schemas import (
    SINCE_RULE,
    ChangesEnvelope,
    ChangesMeta,
    ChangesQuery,
    Deletion,
    ListDeletion,
    Upsert,
)
from service.sync.state import SyncState
from service.sync.store import ChangeStore
from service.sync.tokens import Position, SyncTokens
from service.tasks import documentation as examples
from service.web.bodies import read_query, rules
from service.web.endpoint import caller
from service.web.envelope import json_response, request_id
from service.web.errors import SyncExpired, invalid
from service.web.schemas import FieldError


def since_position(tokens: SyncTokens, user_id: str, token: str, retention: int) -> Position:
    """The position a `since` token names: 422 if it is not this user's, 410 if it is too old."""
    try:
        position = tokens.decode(user_id, token)
    except ValueError:
        raise invalid("since", SINCE_RULE) from None
    if datetime.now(UTC) - position.at > timedelta(seconds=retention):
        raise SyncExpired()
    return position


async def changes(request: Request[SyncState]) -> Response:
    user_id = caller(request)
    query = read_query(request, ChangesQuery)
    tokens: SyncTokens = request.state["sync_tokens"]
    since = None
    if query.since is not UNSET:
        since = since_position(tokens, user_id, query.since, request.state["sync_retention"])
    feed: ChangeStore = request.state["changes"]
    full = since is None or since.listing_lists
    seq = 0 if since is None else since.seq
    # A full sync past its lists knows every list up to the number it read them at.
    lists_seq = seq if since is None or since.listing_lists else max(seq, since.lists_seq)
    page = await feed.changes(user_id, seq, lists_seq, query.limit + 1, full=full)
    if since is not None and since.seq < page.horizon:
        # Deletions after it were forgotten by the per-user bound: it cannot be brought up to date.
        raise SyncExpired("Deletions since this sync token are no longer kept; start over with a full sync")
    if since is not None and since.seq > page.head:
        # The database is behind the token (restored from a backup): only a full sync is safe.
        raise SyncExpired("This sync token is ahead of the server's history; start over with a full sync")
    data, has_more = page.changes[: query.limit], len(page.changes) > query.limit
    if has_more:
        # The client is current up to this page's last change; the time it vouches for stays the
        # one its walk through the pages started from (a full sync starts now).
        last = query.limit - 1
        at = page.read_at if since is None else since.at
        in_lists = full and page.of_lists[last]
        # A full sync that reached its tasks sent every list up to this snapshot's number.
        known = page.head if full and not in_lists else lists_seq
        position = Position(page.seqs[last], at, listing_lists=in_lists, lists_seq=known)
    else:
        # Everything up to the snapshot's latest number is in hand, as of the snapshot.
        position = Position(page.head, page.read_at)
    meta = ChangesMeta(
        request_id(request.scope),
        count=len(data),
        limit=query.limit,
        next_since=tokens.encode(user_id, position),
        has_more=has_more,
    )
    return json_response(request.scope, 200, ChangesEnvelope(data, meta))


GET_CHANGES = Operation(
    "getChanges",
    "What changed since a sync token: tasks' and lists' upserts and deletions, oldest first (a full "
    "sync without one: every list, then every task)",
    200,
    ChangesEnvelope,
    (*API_ERRORS, 410, 422),
    ok_example=ChangesEnvelope(
        [
            Upsert(examples.DONE),
            Deletion(
                id=uuid.UUID("01934f2e-9a4b-7c5d-8e6f-0a1b2c3d4e5f"), deleted_at=examples.DONE.updated_at
            ),
            ListDeletion(
                id=uuid.UUID("01934f2d-5c6d-7e8f-9a0b-1c2d3e4f5a6b"), deleted_at=examples.DONE.updated_at
            ),
        ],
        ChangesMeta(
            EXAMPLE_META.request_id,
            count=3,
            limit=200,
            next_since="AQAAAAAAAAAqAAYK9w2sE4BHoQ0I2x5Yc0Kf3u1Vb2mZQ",
            has_more=False,
        ),
    ),
    invalid=FieldError("limit", rules(ChangesQuery)["limit"]),
    parameters=query_parameters(ChangesQuery),
)

routes = [ApiRoute("/api/{user_id}/tasks/changes", changes, get=GET_CHANGES)]
