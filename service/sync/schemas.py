"""The Structs of the changes feed and the event stream (CONTRACT section 9)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import UNSET, Meta, Struct, UnsetType

from service.lists.fields import ListId
from service.lists.schemas import ListRead
from service.tasks.fields import TaskId
from service.tasks.schemas import TaskRead

CHANGES_LIMIT_MAX = 1000
CHANGES_LIMIT_DEFAULT = 200
SINCE_RULE = "is not a sync token this service gave this user"

SyncToken = Annotated[
    str,
    Meta(
        description="Opaque position in the user's changes; pass it as `since`",
        examples=["AQAAAAAAAAAqAAYK9w2sE4BHoQ0I2x5Yc0Kf3u1Vb2mZQ"],
    ),
]


class ChangesQuery(Struct, forbid_unknown_fields=False):
    """The query string of GET /api/{user_id}/tasks/changes."""

    since: (
        Annotated[
            str,
            Meta(
                min_length=1,
                description="`meta.next_since` of the previous call; leave it out for a full sync",
                extra={"rule": SINCE_RULE},
            ),
        ]
        | UnsetType
    ) = UNSET
    limit: Annotated[
        int,
        Meta(
            ge=1,
            le=CHANGES_LIMIT_MAX,
            description="Most changes in one response",
            extra={"rule": f"must be an integer from 1 to {CHANGES_LIMIT_MAX}"},
        ),
    ] = CHANGES_LIMIT_DEFAULT


class Upsert(Struct, tag_field="op", tag="upsert"):
    """The task was created or changed: this is its latest state."""

    task: TaskRead


class Deletion(Struct, tag_field="op", tag="delete"):
    """The task was deleted (by DELETE or clear-completed)."""

    id: TaskId
    deleted_at: datetime


class ListUpsert(Struct, tag_field="op", tag="list_upsert"):
    """The list was created or changed: this is its latest state."""

    list: ListRead


class ListDeletion(Struct, tag_field="op", tag="list_delete"):
    """The list was deleted; its tasks' deletions came before this."""

    id: ListId
    deleted_at: datetime


Change = Upsert | Deletion | ListUpsert | ListDeletion


class ChangesMeta(Struct):
    request_id: str
    count: int
    limit: int
    next_since: SyncToken
    has_more: bool


class ChangesEnvelope(Struct):
    """A page of changes, oldest first; a task appears at most once, in its latest state."""

    data: list[Change]
    meta: ChangesMeta


class Since(Struct):
    """The `data` of the stream's `ready` and `changed` events."""

    since: SyncToken
