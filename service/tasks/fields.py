"""The rules of a task's fields, each stated once in a `Meta`, and the normalising they share.

msgspec enforces a `Meta` while decoding, the OpenAPI document shows it, and its `extra["rule"]`
is the message a client reads when a value breaks it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from msgspec import Meta

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

# The tree (contract v3): a top-level task is level 1.
MAX_LEVELS = 4
PARENT_RULE = "must be the id of one of your tasks"
# A move's parent or anchor: never the moved task or one of its subtasks (that would be a cycle).
OUTSIDE_RULE = "must not be the task itself or one of its subtasks"
LIST_RULE = "must be the id of one of your lists, or null for the Inbox"
LIST_FILTER_RULE = "must be the id of one of your lists, or inbox"
PARENT_FILTER_RULE = "must be the id of one of your tasks, or none"
SAME_LIST_RULE = "must be the parent's list: a subtask is always in its parent's list"
LEVELS_RULE = f"would nest tasks deeper than {MAX_LEVELS} levels"
_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
INBOX = "inbox"


def _any_case(word: str) -> str:
    """A pattern for `word` in any case, as ids are taken in any case (a JSON Schema pattern has no flags)."""
    return "".join(f"[{c}{c.upper()}]" for c in word)


TOP_LEVEL = "none"
ListFilter = Annotated[
    str,
    Meta(
        pattern=f"^(?:{_any_case(INBOX)}|{_UUID})$",
        description="One list's tasks: a list id, or `inbox`",
        extra={"rule": LIST_FILTER_RULE},
    ),
]
ParentFilter = Annotated[
    str,
    Meta(
        pattern=f"^(?:{_any_case(TOP_LEVEL)}|{_UUID})$",
        description="One task's subtasks (its children): a task id, or `none` for top-level tasks only",
        extra={"rule": PARENT_FILTER_RULE},
    ),
]
ListRef = Annotated[
    uuid.UUID, Meta(description="One of the user's lists; null is the Inbox", extra={"rule": LIST_RULE})
]
ParentRef = Annotated[
    uuid.UUID,
    Meta(description="One of the user's tasks; null is the top level", extra={"rule": PARENT_RULE}),
]


def trimmed(text: str) -> str:
    """A title or tag as stored: without the white space its pattern allows around it."""
    return text.strip(WHITESPACE)


def trimmed_pattern(max_length: int) -> str:
    """The pattern of a title or tag, for another bound: 1-`max_length` characters after trimming, no NUL."""
    return f"^{_WS}*{_TEXT}(?:[^\\u0000]{{0,{max_length - 2}}}{_TEXT})?{_WS}*$"


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
