"""The lists table (sql/008_lists_and_subtasks.sql), as a SQLModel table model."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, Text, text
from sqlmodel import Field, SQLModel

_ZERO = {"server_default": text("0")}


class TaskList(SQLModel, table=True):
    """One of a user's lists; keyed by its owner first, like a task."""

    __tablename__ = "lists"

    user_id: str = Field(sa_type=Text, foreign_key="users.id", ondelete="CASCADE", primary_key=True)
    id: uuid.UUID = Field(primary_key=True)
    name: str = Field(sa_type=Text)
    # Byte order is the order of the user's lists (service/tasks/order/positions.py's keys).
    position: str = Field(sa_type=Text(collation="C"))
    version: int = Field(sa_column_kwargs={"server_default": text("1")})
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    # The user's change number of this row's latest change (sql/004's triggers number lists too).
    change_seq: int = Field(sa_type=BigInteger, sa_column_kwargs=_ZERO)
    # The list's tasks and how many are completed: kept by the task counters' triggers (sql/008).
    task_count: int = Field(sa_type=Integer, sa_column_kwargs=_ZERO)
    completed_count: int = Field(sa_type=Integer, sa_column_kwargs=_ZERO)
