"""The task tables' columns and conditions every task statement shares, and the row a task is read from.

Every statement names its user: `WHERE user_id = :user_id`, and a task by its id within them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import Integer, Text, or_
from sqlalchemy import any_ as sql_any
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import ColumnElement, func
from sqlalchemy.sql.expression import literal_column

from service.db.statements import param, table
from service.tasks.models import IdempotencyKey, Task, TaskTagCount, User
from service.tasks.order import positions
from service.tasks.schemas import TaskRead
from service.web.conditional import etag

tasks = table(Task)
users = table(User)
keys = table(IdempotencyKey)
tag_counts = table(TaskTagCount)

USER = param("user_id", Text)
OWNED = (tasks.c.user_id == USER, tasks.c.id == param("task_id"))
# A null list means "no If-Match": otherwise the stored version must be one of them.
_VERSIONS = param("versions", ARRAY(Integer))
MATCHES = or_(_VERSIONS.is_(None), tasks.c.version == sql_any(_VERSIONS))
BUMP = {"version": tasks.c.version + literal_column("1"), "updated_at": param("now")}

# What a read returns: TaskRead's fields, by name, so a field added there is selected everywhere.
READ_COLUMNS = tuple(tasks.c[name] for name in TaskRead.__struct_fields__)
RETURNED = (*READ_COLUMNS, tasks.c.version)


def utc_now() -> datetime:
    """The write time: taken by the application, like the UUIDv7 ids, so both agree."""
    return datetime.now(UTC)


def bind_fields(schema: type[msgspec.Struct]) -> dict[str, Any]:
    """A typed parameter for each field of a body struct, named like the field and its column."""
    return {name: param(name, tasks.c[name].type) for name in schema.__struct_fields__}


def int_key(n: ColumnElement[Any]) -> ColumnElement[str]:
    """positions.int_key in SQL: built-in functions only, so a statement can make keys itself."""
    shifted = func.to_hex(n + literal_column(str(positions.ORIGIN)))
    return func.lpad(shifted, literal_column(str(positions.INT_WIDTH)), literal_column("'0'"))


class _Version(msgspec.Struct):
    version: int


_decode_read = msgspec.json.Decoder(TaskRead).decode
_decode_version = msgspec.json.Decoder(_Version).decode


class StoredTask(msgspec.Struct, frozen=True):
    """A task as stored: what the API shows of it, and the version its ETag is made from."""

    task: TaskRead
    version: int

    def etag(self) -> str:
        return etag(self.task.id, self.version)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StoredTask:
        """From a row of `RETURNED` columns: the task's fields in TaskRead order, then the version."""
        return cls(TaskRead(*row[:-1]), row[-1])

    @classmethod
    def from_json(cls, raw: bytes) -> StoredTask:
        """From a row PostgreSQL rendered as JSON (its timestamps in the session's time zone)."""
        task = _decode_read(raw)
        in_utc = {
            name: value.astimezone(UTC)
            for name, value in msgspec.structs.asdict(task).items()
            if isinstance(value, datetime)
        }
        return cls(msgspec.structs.replace(task, **in_utc), _decode_version(raw).version)
