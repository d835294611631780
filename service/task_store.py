"""All SQL on tasks and idempotency keys. Every statement names its user: `WHERE user_id = :user_id`.

Statements are SQLAlchemy Core over the SQLModel tables, compiled once at import into asyncpg's
`$n` form; a request only binds values and runs them on a pooled asyncpg connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy import Boolean, Integer, LargeBinary, SmallInteger, Text, bindparam, case, func, or_, tuple_
from sqlalchemy import any_ as sql_any
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.sql import ColumnElement, Executable, delete, select, update
from sqlalchemy.sql.expression import literal_column

from .models import IdempotencyKey, Task, User

_DIALECT = asyncpg_dialect.dialect()
tasks = Task.__table__  # type: ignore[attr-defined]
users = User.__table__  # type: ignore[attr-defined]
keys = IdempotencyKey.__table__  # type: ignore[attr-defined]

# Abandoned claims (a worker died mid-request) are taken over after this long.
IN_FLIGHT_SECONDS = 60
IDEMPOTENCY_TTL_HOURS = 24


def utc_now() -> datetime:
    """The write time: taken by the application, like the UUIDv7 ids, so both agree."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Query:
    """A statement compiled once: its SQL and the order its named parameters bind in."""

    sql: str
    names: tuple[str, ...]
    # Values the statement fixes itself (column defaults, literal nulls); the rest must be given.
    fixed: Mapping[str, Any]

    @classmethod
    def of(cls, statement: Executable) -> Query:
        compiled = statement.compile(dialect=_DIALECT)
        fixed = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
        return cls(str(compiled), tuple(compiled.positiontup or ()), fixed)

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] if name in values else self.fixed[name] for name in self.names]


def _p(name: str, type_: Any = None) -> Any:
    return bindparam(name, type_=type_)


_OWNED = (tasks.c.user_id == _p("user_id", Text), tasks.c.id == _p("task_id"))
# A null list means "no If-Match": otherwise the stored version must be one of them.
_VERSIONS = _p("versions", ARRAY(Integer))
_MATCHES = or_(_VERSIONS.is_(None), tasks.c.version == sql_any(_VERSIONS))
_BUMP = {"version": tasks.c.version + literal_column("1"), "updated_at": _p("now")}

_new_user = insert(users).values(id=_p("user_id", Text)).on_conflict_do_nothing().cte("new_user")
_insert_task = insert(tasks).values(
    user_id=_p("user_id", Text),
    id=_p("task_id"),
    title=_p("title", Text),
    description=_p("description", Text),
    created_at=_p("now"),
    updated_at=_p("now"),
)
# The stored response is written by the statement that creates the task: both happen or neither.
_complete_key = (
    update(keys)
    .where(keys.c.user_id == _p("user_id", Text), keys.c.key == _p("key", Text))
    .values(status=_p("status", SmallInteger), response=_p("response", LargeBinary))
    .cte("completed_key")
)

CREATE = Query.of(_insert_task.returning(*tasks.c).add_cte(_new_user))
CREATE_WITH_KEY = Query.of(_insert_task.returning(*tasks.c).add_cte(_new_user).add_cte(_complete_key))
GET = Query.of(select(*tasks.c).where(*_OWNED))
EXISTS = Query.of(select(tasks.c.version).where(*_OWNED))
UPDATE = Query.of(
    update(tasks)
    .where(*_OWNED, _MATCHES)
    .values(
        title=func.coalesce(_p("title", Text), tasks.c.title),
        # description may be set to null, so "left out" needs a flag of its own.
        description=case(
            (_p("set_description", Boolean), _p("description", Text)), else_=tasks.c.description
        ),
        completed=func.coalesce(_p("completed", Boolean), tasks.c.completed),
        **_BUMP,
    )
    .returning(*tasks.c)
)
SET_COMPLETED = Query.of(
    update(tasks)
    .where(*_OWNED, _MATCHES)
    .values(completed=func.coalesce(_p("completed", Boolean), ~tasks.c.completed), **_BUMP)
    .returning(*tasks.c)
)
DELETE = Query.of(delete(tasks).where(*_OWNED, _MATCHES).returning(*tasks.c))

_expired = keys.c.created_at < func.now() - literal_column(f"interval '{IDEMPOTENCY_TTL_HOURS} hours'")
_abandoned = keys.c.status.is_(None) & (
    keys.c.created_at < func.now() - literal_column(f"interval '{IN_FLIGHT_SECONDS} seconds'")
)
_claim = insert(keys).values(
    user_id=_p("user_id", Text), key=_p("key", Text), request_hash=_p("request_hash", LargeBinary)
)
CLAIM_KEY = Query.of(
    _claim.on_conflict_do_update(
        index_elements=[keys.c.user_id, keys.c.key],
        set_={
            "request_hash": _claim.excluded.request_hash,
            "status": None,
            "response": None,
            "created_at": func.now(),
        },
        where=_expired | _abandoned,
    ).returning(keys.c.key)
)
FIND_KEY = Query.of(
    select(keys.c.request_hash, keys.c.status, keys.c.response).where(
        keys.c.user_id == _p("user_id", Text), keys.c.key == _p("key", Text), ~_expired
    )
)
RELEASE_KEY = Query.of(
    delete(keys).where(
        keys.c.user_id == _p("user_id", Text), keys.c.key == _p("key", Text), keys.c.status.is_(None)
    )
)
# Maintenance across all users: it only forgets keys past their 24 hours.
PURGE_KEYS = Query.of(delete(keys).where(_expired))


@dataclass(frozen=True, slots=True)
class Sort:
    """One order of the listing: its column and direction; ties go by id the same way."""

    name: str
    field: str
    column: ColumnElement[Any]
    descending: bool

    def order(self) -> list[ColumnElement[Any]]:
        if self.descending:
            return [self.column.desc(), tasks.c.id.desc()]
        return [self.column.asc(), tasks.c.id.asc()]

    def after(self) -> ColumnElement[bool]:
        """Rows strictly past the cursor's (value, id), in this order: the keyset condition."""
        here = tuple_(self.column, tasks.c.id)
        there = tuple_(_p("after_value", self.column.type), _p("after_id", tasks.c.id.type))
        return here < there if self.descending else here > there


_TITLE = tasks.c.title.collate("C")  # code-point order, as the contract decides
SORTS: dict[str, Sort] = {
    f"{sign}{name}": Sort(f"{sign}{name}", name, column, sign == "-")
    for name, column in (
        ("created_at", tasks.c.created_at),
        ("updated_at", tasks.c.updated_at),
        ("title", _TITLE),
    )
    for sign in ("", "-")
}


def _list_query(sort: Sort, by_completed: bool, by_text: bool, after: bool) -> Query:
    conditions: list[ColumnElement[bool]] = [tasks.c.user_id == _p("user_id", Text)]
    if by_completed:
        conditions.append(tasks.c.completed == _p("completed", Boolean))
    if by_text:
        pattern = _p("pattern", Text)
        conditions.append(
            or_(tasks.c.title.ilike(pattern, escape="\\"), tasks.c.description.ilike(pattern, escape="\\"))
        )
    if after:
        conditions.append(sort.after())
    statement = select(*tasks.c).where(*conditions).order_by(*sort.order()).limit(_p("limit", Integer))
    return Query.of(statement)


LIST_QUERIES: dict[tuple[str, bool, bool, bool], Query] = {
    (name, c, t, a): _list_query(sort, c, t, a)
    for name, sort in SORTS.items()
    for c in (False, True)
    for t in (False, True)
    for a in (False, True)
}


def like_pattern(text: str) -> str:
    """A literal, case-insensitive substring pattern: %, _ and \\ match themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class ListFilter:
    """What one page asks for; `after` is the last (value, id) of the previous page."""

    sort: str = "-created_at"
    limit: int = 50
    completed: bool | None = None
    text: str | None = None
    after: tuple[Any, uuid.UUID] | None = None


class TaskStore:
    """Runs the statements above on the pool; every method takes the owner's id."""

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float) -> None:
        self._pool = pool
        self._timeout = acquire_timeout
        # asyncpg hands a freed connection to whichever task asks first, so under load a waiting
        # request can be overtaken again and again (a long p99 tail). asyncio's Semaphore is
        # first come, first served: at most pool-size holders, queued in arrival order.
        self._slots = asyncio.Semaphore(pool.get_max_size())

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._slots.locked():
            async with asyncio.timeout(self._timeout):
                await self._slots.acquire()
        else:
            await self._slots.acquire()
        try:
            # A slot guarantees a free holder; opening a connection is bounded by the connect timeout.
            async with self._pool.acquire() as conn:
                yield conn
        finally:
            self._slots.release()

    async def _one(self, query: Query, **values: Any) -> asyncpg.Record | None:
        async with self._connection() as conn:
            return await conn.fetchrow(query.sql, *query.args(values))

    async def _all(self, query: Query, **values: Any) -> list[asyncpg.Record]:
        async with self._connection() as conn:
            return await conn.fetch(query.sql, *query.args(values))

    async def create(
        self,
        user_id: str,
        task_id: uuid.UUID,
        title: str,
        description: str | None,
        now: datetime,
        *,
        key: str | None = None,
        response: bytes | None = None,
    ) -> asyncpg.Record:
        values = {
            "user_id": user_id,
            "task_id": task_id,
            "title": title,
            "description": description,
            "now": now,
        }
        if key is None:
            row = await self._one(CREATE, **values)
        else:
            row = await self._one(CREATE_WITH_KEY, key=key, status=201, response=response, **values)
        assert row is not None
        return row

    async def get(self, user_id: str, task_id: uuid.UUID) -> asyncpg.Record | None:
        return await self._one(GET, user_id=user_id, task_id=task_id)

    async def exists(self, user_id: str, task_id: uuid.UUID) -> bool:
        return await self._one(EXISTS, user_id=user_id, task_id=task_id) is not None

    async def update(
        self,
        user_id: str,
        task_id: uuid.UUID,
        versions: Sequence[int] | None,
        *,
        title: str | None,
        set_description: bool,
        description: str | None,
        completed: bool | None,
    ) -> asyncpg.Record | None:
        return await self._one(
            UPDATE,
            user_id=user_id,
            task_id=task_id,
            versions=versions,
            title=title,
            set_description=set_description,
            description=description,
            completed=completed,
            now=utc_now(),
        )

    async def set_completed(
        self, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None, completed: bool | None
    ) -> asyncpg.Record | None:
        """Set `completed`, or toggle it when None, in one statement: concurrent toggles never lose one."""
        return await self._one(
            SET_COMPLETED,
            user_id=user_id,
            task_id=task_id,
            versions=versions,
            completed=completed,
            now=utc_now(),
        )

    async def delete(
        self, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None
    ) -> asyncpg.Record | None:
        return await self._one(DELETE, user_id=user_id, task_id=task_id, versions=versions)

    async def list(self, user_id: str, page: ListFilter) -> list[asyncpg.Record]:
        """One page and, if there is one, the first row of the next (so the caller knows)."""
        query = LIST_QUERIES[
            (page.sort, page.completed is not None, page.text is not None, page.after is not None)
        ]
        values: dict[str, Any] = {"user_id": user_id, "limit": page.limit + 1, "completed": page.completed}
        if page.text is not None:
            values["pattern"] = like_pattern(page.text)
        if page.after is not None:
            values["after_value"], values["after_id"] = page.after
        return await self._all(query, **values)

    async def claim_key(self, user_id: str, key: str, request_hash: bytes) -> bool:
        """Take an idempotency key for a new request; False when it is already taken."""
        return await self._one(CLAIM_KEY, user_id=user_id, key=key, request_hash=request_hash) is not None

    async def find_key(self, user_id: str, key: str) -> asyncpg.Record | None:
        return await self._one(FIND_KEY, user_id=user_id, key=key)

    async def release_key(self, user_id: str, key: str) -> None:
        async with self._connection() as conn:
            await conn.execute(RELEASE_KEY.sql, *RELEASE_KEY.args({"user_id": user_id, "key": key}))

    async def purge_keys(self) -> int:
        async with self._connection() as conn:
            status = await conn.execute(PURGE_KEYS.sql)
        return int(status.rsplit(" ", 1)[-1])
