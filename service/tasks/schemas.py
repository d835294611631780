"""The msgspec Structs of the task routes: bodies, the task as read, the listing's query, stats, envelopes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from service.tasks.fields import (
    CURSOR_RULE,
    DUE_RULE,
    DUE_YEAR_PATTERN,
    LIMIT_DEFAULT,
    LIMIT_MAX,
    NO_NUL_PATTERN,
    QUERY_TEXT_MAX,
    TAG_MAX,
    TAGS_MAX,
    Description,
    DueAt,
    ListFilter,
    ListRef,
    ParentFilter,
    ParentRef,
    Priority,
    Tag,
    Tags,
    TaskAnchor,
    TaskId,
    TaskPriority,
    Title,
    in_utc,
    tag_keys,
    trimmed,
    unique_tags,
)
from service.web.schemas import ResponseMeta


class TaskCreate(Struct, forbid_unknown_fields=True):
    """Body of POST /api/{user_id}/tasks."""

    title: Title
    description: Description | None = None
    due_at: DueAt | None = None
    priority: TaskPriority = "none"
    tags: Tags = msgspec.field(default_factory=list)
    # Absent and null differ: with a parent, only an absent list_id or the parent's own is right.
    list_id: ListRef | UnsetType | None = UNSET
    parent_id: ParentRef | None = None

    def __post_init__(self) -> None:
        self.title = trimmed(self.title)
        if self.due_at is not None:
            self.due_at = in_utc(self.due_at, "due_at")
        self.tags = unique_tags(self.tags)


class TaskUpdate(Struct, forbid_unknown_fields=True):
    """Body of PUT and PATCH: partial, at least one field."""

    title: Title | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    completed: bool | UnsetType = UNSET
    due_at: DueAt | UnsetType | None = UNSET
    priority: TaskPriority | UnsetType = UNSET
    tags: Tags | UnsetType = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.title, UnsetType):
            self.title = trimmed(self.title)
        if isinstance(self.due_at, datetime):
            self.due_at = in_utc(self.due_at, "due_at")
        if not isinstance(self.tags, UnsetType):
            self.tags = unique_tags(self.tags)


class TaskComplete(Struct, forbid_unknown_fields=True):
    """Optional body of PATCH .../complete: absent `completed` toggles."""

    completed: bool | UnsetType = UNSET


MOVE_RULE = (
    "must have exactly one of before, after, parent_id, list_id (parent_id may come with its own list_id)"
)


class TaskMove(Struct, forbid_unknown_fields=True):
    """Body of POST .../move: one placement; `parent_id` may come with an equal `list_id`."""

    before: TaskAnchor | UnsetType = UNSET
    after: TaskAnchor | UnsetType = UNSET
    parent_id: ParentRef | UnsetType | None = UNSET
    list_id: ListRef | UnsetType | None = UNSET

    def __post_init__(self) -> None:
        given = [name for name in self.__struct_fields__ if getattr(self, name) is not UNSET]
        if len(given) != 1 and set(given) != {"parent_id", "list_id"}:
            raise ValueError(MOVE_RULE)


class ClearCompleted(Struct, forbid_unknown_fields=True):
    """Optional body of POST .../clear-completed: nothing or `{}` (every list), or one list's id (null: the Inbox)."""

    list_id: ListRef | UnsetType | None = UNSET


class StatsQuery(Struct, forbid_unknown_fields=False):
    """The query string of GET .../tasks/stats."""

    list_id: ListFilter | UnsetType = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.list_id, str):
            self.list_id = self.list_id.lower()


class TaskRead(Struct):
    """A task as the API returns it; its fields are the columns the store selects, in this order."""

    id: TaskId
    title: str
    description: str | None
    completed: bool
    user_id: str
    created_at: datetime
    updated_at: datetime
    due_at: datetime | None
    priority: Priority
    tags: list[str]
    completed_at: Annotated[
        datetime | None, Meta(description="When `completed` last became true; null while not completed")
    ]
    position: Annotated[
        str,
        Meta(
            description="The place among its siblings (same list and parent): opaque, compare as byte strings"
        ),
    ]
    list_id: Annotated[uuid.UUID | None, Meta(description="Its list; null is the Inbox")]
    parent_id: Annotated[uuid.UUID | None, Meta(description="Its parent task; null is the top level")]


# The listing's orders; the store keeps one index-served Sort for each (a test checks they agree).
SortName = Literal[
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "title",
    "-title",
    "due_at",
    "-due_at",
    "priority",
    "-priority",
    "position",
]
DueBound = Annotated[
    datetime,
    Meta(
        tz=True,
        description="RFC 3339 with an offset, years 1000-9998",
        extra_json_schema={"pattern": DUE_YEAR_PATTERN},
        extra={"rule": DUE_RULE},
    ),
]


class ListQuery(Struct, forbid_unknown_fields=False):
    """The query string of GET /api/{user_id}/tasks: each field is one parameter, at most once."""

    completed: (
        Annotated[
            Literal["true", "false"],
            Meta(description="Only done or only open tasks", extra={"rule": "must be true or false"}),
        ]
        | UnsetType
    ) = UNSET
    q: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=QUERY_TEXT_MAX,
                pattern=NO_NUL_PATTERN,
                description="Case-insensitive literal match in title or description",
                extra={"rule": f"must be 1-{QUERY_TEXT_MAX} characters, without NUL"},
            ),
        ]
        | UnsetType
    ) = UNSET
    priority: TaskPriority | UnsetType = UNSET
    tag: (
        Annotated[
            list[Tag],
            Meta(
                max_length=TAGS_MAX,
                description="Repeatable: tasks having every one of these tags (compared case-insensitively)",
                extra={
                    "rule": f"must be at most {TAGS_MAX} tags, each 1-{TAG_MAX} characters after trimming "
                    "white space, without NUL"
                },
            ),
        ]
        | UnsetType
    ) = UNSET
    due_min: (
        Annotated[DueBound, Meta(description="Due at or after this (tasks without due_at never match)")]
        | UnsetType
    ) = UNSET
    due_max: (
        Annotated[DueBound, Meta(description="Due before this (tasks without due_at never match)")]
        | UnsetType
    ) = UNSET
    list_id: ListFilter | UnsetType = UNSET
    parent_id: ParentFilter | UnsetType = UNSET
    sort: Annotated[
        SortName,
        Meta(
            description="Order; ties go by id. due_at and -due_at put tasks without one last; priority "
            "ranks none < low < medium < high, ties by created_at; position is tree order (each task followed "
            "by its subtasks, siblings in their manual order; the Inbox first, then each list in order)"
        ),
    ] = "-created_at"
    limit: Annotated[
        int,
        Meta(
            ge=1,
            le=LIMIT_MAX,
            description="Page size",
            extra={"rule": f"must be an integer from 1 to {LIMIT_MAX}"},
        ),
    ] = LIMIT_DEFAULT
    cursor: (
        Annotated[
            str,
            Meta(
                min_length=1,
                description="`meta.next_cursor` of the previous page",
                extra={"rule": CURSOR_RULE},
            ),
        ]
        | UnsetType
    ) = UNSET

    def __post_init__(self) -> None:
        # Normalised, so equivalent queries share their cursors (a cursor is bound to the query).
        if not isinstance(self.tag, UnsetType):
            self.tag = sorted(set(tag_keys([trimmed(tag) for tag in self.tag])))
        if not isinstance(self.due_min, UnsetType):
            self.due_min = in_utc(self.due_min, "due_min")
        if not isinstance(self.due_max, UnsetType):
            self.due_max = in_utc(self.due_max, "due_max")
        if isinstance(self.list_id, str):
            self.list_id = self.list_id.lower()
        if isinstance(self.parent_id, str):
            self.parent_id = self.parent_id.lower()


class TagCount(Struct):
    name: str
    count: int


class ListCount(Struct):
    """One list's tasks counted; `list_id` null is the Inbox."""

    list_id: uuid.UUID | None
    active: int
    completed: int


class TaskStats(Struct):
    """The user's tasks counted (one list's, with `list_id`): `active` = not completed, `overdue` =
    active and due before now."""

    total: int
    active: int
    completed: int
    overdue: int
    tags: Annotated[
        list[TagCount],
        Meta(description="Tags of active tasks, most used first, then by name; at most 100"),
    ]
    lists: Annotated[
        list[ListCount],
        Meta(description="Every list's counts, the Inbox first, then each list in order (empty ones too)"),
    ]


class Cleared(Struct):
    deleted: int


class ListMeta(Struct):
    request_id: str
    count: int
    limit: int
    next_cursor: str | None


class TaskEnvelope(Struct):
    """A response with one task (a success has no `error` key)."""

    data: TaskRead
    meta: ResponseMeta


class DeletedMeta(Struct):
    request_id: str
    deleted_subtasks: Annotated[int, Meta(description="How many of its subtasks (at any level) went with it")]


class TaskDeletedEnvelope(Struct):
    """The deleted task, as it was."""

    data: TaskRead
    meta: DeletedMeta


class StatsEnvelope(Struct):
    data: TaskStats
    meta: ResponseMeta


class ClearedEnvelope(Struct):
    """How many completed tasks were deleted."""

    data: Cleared
    meta: ResponseMeta


class TaskListEnvelope(Struct):
    """A page of tasks."""

    data: list[TaskRead]
    meta: ListMeta
