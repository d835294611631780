"""SQLModel table models: the one Python description of the schema that `sql/` creates."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, SmallInteger, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, ENUM
from sqlmodel import Field, SQLModel

from service.tasks.fields import PRIORITIES

_NOW = {"server_default": func.now()}


class User(SQLModel, table=True):
    """A Better Auth user, created on their first write."""

    __tablename__ = "users"

    id: str = Field(sa_type=Text, primary_key=True)
    created_at: datetime = Field(sa_type=DateTime(timezone=True), sa_column_kwargs=_NOW)
    # How many tasks the user holds: kept by the statements that insert and delete tasks.
    task_count: int = Field(sa_type=Integer, sa_column_kwargs={"server_default": text("0")})
    # The lowest integer part of the user's positions; a new first task counts it down.
    position_head: int = Field(sa_type=BigInteger, sa_column_kwargs={"server_default": text("0")})
    # The number of the user's latest change to their tasks (sql/004_changes.sql).
    change_seq: int = Field(sa_type=BigInteger, sa_column_kwargs={"server_default": text("0")})
    # How many of the user's tasks are completed: kept by triggers (sql/006_stats_counters.sql).
    completed_count: int = Field(sa_type=Integer, sa_column_kwargs={"server_default": text("0")})
    # The highest change number whose tombstone the count bound forgot (sql/007_tombstone_bound.sql).
    tombstone_horizon: int = Field(sa_type=BigInteger, sa_column_kwargs={"server_default": text("0")})


class Task(SQLModel, table=True):
    """One todo item; keyed by its owner first, so every lookup is scoped to a user."""

    __tablename__ = "tasks"

    user_id: str = Field(sa_type=Text, foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    title: str = Field(sa_type=Text)
    description: str | None = Field(default=None, sa_type=Text)
    # Defaults live in the database only, so an INSERT that leaves them out gets them there.
    completed: bool = Field(sa_column_kwargs={"server_default": text("false")})
    version: int = Field(sa_column_kwargs={"server_default": text("1")})
    created_at: datetime = Field(sa_type=DateTime(timezone=True), sa_column_kwargs=_NOW)
    updated_at: datetime = Field(sa_type=DateTime(timezone=True), sa_column_kwargs=_NOW)
    due_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # An enum type: its values sort by rank.
    priority: str = Field(
        sa_type=ENUM(*PRIORITIES, name="task_priority", create_type=False),
        sa_column_kwargs={"server_default": text("'none'")},
    )
    tags: list[str] = Field(sa_type=ARRAY(Text), sa_column_kwargs={"server_default": text("'{}'")})
    # The tags case-folded, one for one: what the tag filter and the stats compare.
    tag_keys: list[str] = Field(sa_type=ARRAY(Text), sa_column_kwargs={"server_default": text("'{}'")})
    completed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    # Byte order is the manual order (service/tasks/order/positions.py).
    position: str = Field(sa_type=Text(collation="C"))
    # Set by a trigger on every write: the user's change number of this row's latest change.
    change_seq: int = Field(sa_type=BigInteger, sa_column_kwargs={"server_default": text("0")})
    # Null: the Inbox. The list's foreign key is in sql/008 (SQLModel's would name one column).
    list_id: uuid.UUID | None = Field(default=None)
    # Null: the top level. A subtask is always in its parent's list.
    parent_id: uuid.UUID | None = Field(default=None)
    # The parent's tree key and a '.' (null at the top level): the tree key is ancestry || position.
    ancestry: str | None = Field(default=None, sa_type=Text(collation="C"))


class TaskTombstone(SQLModel, table=True):
    """A deleted task, kept for SYNC_RETENTION so the changes feed can report the deletion."""

    __tablename__ = "task_tombstones"

    user_id: str = Field(sa_type=Text, foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    change_seq: int = Field(sa_type=BigInteger, primary_key=True)
    id: uuid.UUID
    deleted_at: datetime = Field(sa_type=DateTime(timezone=True))
    # A list's deletion rather than a task's.
    is_list: bool = Field(default=False, sa_column_kwargs={"server_default": text("false")})


class TaskTagCount(SQLModel, table=True):
    """How many of a user's active tasks carry a tag in one spelling: kept by triggers (sql/006)."""

    __tablename__ = "tag_counts"

    user_id: str = Field(sa_type=Text, foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    tag_key: str = Field(sa_type=Text(collation="C"), primary_key=True)
    tag: str = Field(sa_type=Text(collation="C"), primary_key=True)
    tasks: int = Field(sa_type=Integer)


class IdempotencyKey(SQLModel, table=True):
    """A POST's Idempotency-Key: in flight while `status` is null, then the stored 2xx response."""

    __tablename__ = "idempotency_keys"

    user_id: str = Field(sa_type=Text, primary_key=True)
    key: str = Field(sa_type=Text, primary_key=True)
    request_hash: bytes = Field(sa_type=LargeBinary)
    status: int | None = Field(default=None, sa_type=SmallInteger)
    response: bytes | None = Field(default=None, sa_type=LargeBinary)
    created_at: datetime = Field(sa_type=DateTime(timezone=True), sa_column_kwargs=_NOW)
