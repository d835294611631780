"""The msgspec Structs of the list routes: bodies, the list as read, envelopes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from service.lists.fields import ListAnchor, ListId, ListName
from service.tasks.fields import trimmed
from service.web.schemas import ResponseMeta

EXACTLY_ONE_ANCHOR = "must have exactly one of before, after"


class ListCreate(Struct, forbid_unknown_fields=True):
    """Body of POST /api/{user_id}/lists: a new list goes last."""

    name: ListName

    def __post_init__(self) -> None:
        self.name = trimmed(self.name)


class ListUpdate(Struct, forbid_unknown_fields=True):
    """Body of PUT and PATCH: a list has one field one may change, so `name` is required."""

    name: ListName

    def __post_init__(self) -> None:
        self.name = trimmed(self.name)


class ListMove(Struct, forbid_unknown_fields=True):
    """Body of POST .../move: exactly one of `before` and `after`."""

    before: ListAnchor | UnsetType = UNSET
    after: ListAnchor | UnsetType = UNSET

    def __post_init__(self) -> None:
        if (self.before is UNSET) == (self.after is UNSET):
            raise ValueError(EXACTLY_ONE_ANCHOR)

    def anchor(self) -> tuple[Literal["before", "after"], uuid.UUID]:
        """Which side of which list the moved list goes."""
        if isinstance(self.after, uuid.UUID):
            return "after", self.after
        if isinstance(self.before, uuid.UUID):
            return "before", self.before
        raise ValueError(EXACTLY_ONE_ANCHOR)  # __post_init__ saw to it


class ListRead(Struct):
    """A list as the API returns it; its fields are the columns the store selects, in this order."""

    id: ListId
    name: str
    position: Annotated[
        str, Meta(description="The place in the user's order of lists: opaque, compare as byte strings")
    ]
    created_at: datetime
    updated_at: datetime


class ListCountMeta(Struct):
    request_id: str
    count: int


class ListDeletionMeta(Struct):
    request_id: str
    deleted_tasks: Annotated[int, Meta(description="How many tasks were deleted with the list")]


class ListEnvelope(Struct):
    """A response with one list."""

    data: ListRead
    meta: ResponseMeta


class ListsEnvelope(Struct):
    """Every list of the user, in their order."""

    data: list[ListRead]
    meta: ListCountMeta


class DeletedListEnvelope(Struct):
    """The list as it was before its deletion, and how many tasks went with it."""

    data: ListRead
    meta: ListDeletionMeta
