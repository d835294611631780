"""The msgspec Structs every body, query, response and the OpenAPI document are made of.

Each rule lives once, in a `Meta`: msgspec enforces it while decoding, the OpenAPI document shows
it, and its `extra["rule"]` is the message a client reads when a value breaks it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

TITLE_MAX = 200
DESCRIPTION_MAX = 2000
QUERY_TEXT_MAX = 200
LIMIT_MAX = 200
LIMIT_DEFAULT = 50
CURSOR_RULE = "is not a cursor this listing gave out with these parameters"
TAG_MAX = 32
TAGS_MAX = 20
STATS_TAGS_MAX = 100
# Due dates are written in the years 1000 to 9998: far from any real one, and a day clear of the
# ends of Python's range whatever the offset (where asyncpg also reads and writes -infinity and
# +infinity), so converting one to UTC and storing it always works. The JSON Schema says it with
# a pattern on the year, beside the date-time format.
DUE_YEARS = range(1000, 9999)
DUE_YEAR_PATTERN = "^(?:[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
DUE_RULE = "must be an RFC 3339 timestamp with an offset (Z or +hh:mm), in the years 1000 to 9998"
# What "trimming" strips: ECMAScript's white space and line terminators, so the title's pattern
# below means the same to a JSON Schema validator in any language as to this service.
WHITESPACE = " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_WS = "[" + "".join(f"\\u{ord(c):04x}" for c in WHITESPACE) + "]"
_TEXT = _WS[:-1].replace("[", "[^", 1) + "\\u0000]"
# A title is its (trimmed) 1-200 characters, with any white space around them; never NUL.
TITLE_PATTERN = f"^{_WS}*{_TEXT}(?:[^\\u0000]{{0,{TITLE_MAX - 2}}}{_TEXT})?{_WS}*$"
NO_NUL_PATTERN = "^[^\\u0000]*$"
# A tag likewise: its (trimmed) 1-32 characters, with any white space around them; never NUL.
TAG_PATTERN = f"^{_WS}*{_TEXT}(?:[^\\u0000]{{0,{TAG_MAX - 2}}}{_TEXT})?{_WS}*$"

Title = Annotated[
    str,
    Meta(
        min_length=1,
        pattern=TITLE_PATTERN,
        description="1-200 characters after trimming white space; no NUL",
        examples=["Buy milk"],
        extra={"rule": f"must be 1-{TITLE_MAX} characters after trimming white space, without NUL"},
    ),
]
Description = Annotated[
    str,
    Meta(
        max_length=DESCRIPTION_MAX,
        pattern=NO_NUL_PATTERN,
        description="Up to 2,000 characters, stored as sent; no NUL",
        examples=["2 litres, semi-skimmed"],
        extra={"rule": f"must be at most {DESCRIPTION_MAX} characters, without NUL"},
    ),
]
TaskId = Annotated[uuid.UUID, Meta(description="UUIDv7, lower case")]
# Numbers in the database (an enum type) in this order, so sorting by priority is sorting by rank.
Priority = Literal["none", "low", "medium", "high"]
PRIORITIES: tuple[str, ...] = get_args(Priority)
TaskPriority = Annotated[
    Priority,
    Meta(description="none, low, medium or high", extra={"rule": "must be one of none, low, medium, high"}),
]
Tag = Annotated[
    str,
    Meta(
        pattern=TAG_PATTERN,
        description="1-32 characters after trimming white space; no NUL",
        examples=["work"],
    ),
]
Tags = Annotated[
    list[Tag],
    Meta(
        max_length=TAGS_MAX,
        description="At most 20, each trimmed; duplicates (compared case-insensitively) collapse to "
        "the first spelling; order as sent",
        examples=[["work", "q4"]],
        extra={
            "rule": f"must be at most {TAGS_MAX} tags, each 1-{TAG_MAX} characters after trimming "
            "white space, without NUL"
        },
    ),
]
DueAt = Annotated[
    datetime,
    Meta(
        tz=True,
        description="RFC 3339 with an offset (`Z` or `±hh:mm`), years 1000-9998; returned in UTC",
        examples=["2026-01-20T17:00:00Z"],
        extra_json_schema={"pattern": DUE_YEAR_PATTERN},
        extra={"rule": DUE_RULE},
    ),
]
ANCHOR_RULE = "must be the id of another of your tasks"
TaskAnchor = Annotated[
    uuid.UUID, Meta(description="Another of the user's tasks", extra={"rule": ANCHOR_RULE})
]


def trimmed(text: str) -> str:
    """A title or tag as stored: without the white space its pattern allows around it."""
    return text.strip(WHITESPACE)


def broken(field: str) -> ValueError:
    """A rule no `Meta` can state, broken in `__post_init__`: worded like msgspec's own errors, so
    the 422 names `field` and gives its rule."""
    return ValueError(f"Invalid value - at `$.{field}`")


def in_utc(value: datetime, field: str) -> datetime:
    """A due date (or bound) in UTC, if it is written in the years due dates may take."""
    if value.year not in DUE_YEARS:
        raise broken(field)
    return value.astimezone(UTC)


def unique_tags(tags: list[str]) -> list[str]:
    """Trimmed, and each spelling of a tag after its first (compared case-insensitively) dropped."""
    seen: set[str] = set()
    kept = []
    for tag in map(trimmed, tags):
        key = tag.casefold()
        if key not in seen:
            seen.add(key)
            kept.append(tag)
    return kept


def tag_keys(tags: list[str]) -> list[str]:
    """What tags are compared by: Unicode case folding (Straße = STRASSE), the same in every database."""
    return [tag.casefold() for tag in tags]


class TaskCreate(Struct, forbid_unknown_fields=True):
    """Body of POST /api/{user_id}/tasks."""

    title: Title
    description: Description | None = None
    due_at: DueAt | None = None
    priority: TaskPriority = "none"
    tags: Tags = msgspec.field(default_factory=list)

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


class TaskMove(Struct, forbid_unknown_fields=True):
    """Body of POST .../move: exactly one of `before` and `after`."""

    before: TaskAnchor | UnsetType = UNSET
    after: TaskAnchor | UnsetType = UNSET

    def __post_init__(self) -> None:
        if (self.before is UNSET) == (self.after is UNSET):
            raise ValueError("must have exactly one of before, after")

    def anchor(self) -> tuple[Literal["before", "after"], uuid.UUID]:
        """Which side of which task the moved task goes."""
        if isinstance(self.after, uuid.UUID):
            return "after", self.after
        if isinstance(self.before, uuid.UUID):
            return "before", self.before
        raise ValueError("must have exactly one of before, after")  # __post_init__ saw to it


class ClearCompleted(Struct, forbid_unknown_fields=True):
    """Optional body of POST .../clear-completed: nothing, or `{}`."""


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
        str, Meta(description="The place in the manual order: opaque, compare as byte strings")
    ]


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
    sort: Annotated[
        SortName,
        Meta(
            description="Order; ties go by id. due_at and -due_at put tasks without one last; priority "
            "ranks none < low < medium < high, ties by created_at; position is the manual order"
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


class TagCount(Struct):
    name: str
    count: int


class TaskStats(Struct):
    """The user's tasks counted: `active` = not completed, `overdue` = active and due before now."""

    total: int
    active: int
    completed: int
    overdue: int
    tags: Annotated[
        list[TagCount],
        Meta(description="Tags of active tasks, most used first, then by name; at most 100"),
    ]


class Cleared(Struct):
    deleted: int


class ResponseMeta(Struct):
    request_id: str


class ListMeta(Struct):
    request_id: str
    count: int
    limit: int
    next_cursor: str | None


class FieldError(Struct):
    field: str
    message: str


class ErrorBody(Struct):
    status: int
    code: str
    message: str
    details: list[FieldError] = msgspec.field(default_factory=list)


class TaskEnvelope(Struct):
    """A response with one task (a success has no `error` key)."""

    data: TaskRead
    meta: ResponseMeta


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


class ErrorEnvelope(Struct):
    """A failed response: `data` is null and `error` says why."""

    data: None
    meta: ResponseMeta
    error: ErrorBody


class EmptyEnvelope(Struct):
    """A success with nothing to say, such as an allowed CORS preflight."""

    data: None
    meta: ResponseMeta


class Health(Struct):
    status: str


class HealthEnvelope(Struct):
    data: Health
    meta: ResponseMeta


class ServiceIndex(Struct):
    """Where to go from `/`: the interactive docs and the OpenAPI document."""

    docs: str
    openapi: str


class IndexEnvelope(Struct):
    data: ServiceIndex
    meta: ResponseMeta
