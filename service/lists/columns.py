"""The lists table's columns and the conditions every list statement shares, and the row a list is read from.

Every statement names its user: `WHERE user_id = :user_id`, and a list by its id within them.
"""

from __future__ import annotations

import asyncpg
import msgspec
from sqlalchemy import Text
from sqlalchemy.sql.expression import literal_column

from service.db.statements import param, table
from service.lists.models import TaskList
from service.lists.schemas import ListRead
from service.web.conditional import etag

lists = table(TaskList)

USER = param("user_id", Text)
OWNED = (lists.c.user_id == USER, lists.c.id == param("list_id", lists.c.id.type))
BUMP = {"version": lists.c.version + literal_column("1"), "updated_at": param("now")}

# What a read returns: ListRead's fields, by name, so a field added there is selected everywhere.
LIST_READ_COLUMNS = tuple(lists.c[name] for name in ListRead.__struct_fields__)
RETURNED = (*LIST_READ_COLUMNS, lists.c.version)


class StoredList(msgspec.Struct, frozen=True):
    """A list as stored: what the API shows of it, and the version its ETag is made from."""

    task_list: ListRead
    version: int

    def etag(self) -> str:
        return etag(self.task_list.id, self.version)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StoredList:
        """From a row of `RETURNED` columns: the list's fields in ListRead order, then the version."""
        return cls(ListRead(*row[:-1]), row[-1])
