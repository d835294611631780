"""Statements compiled once from SQLModel tables into asyncpg's `$n` form, and the runner that binds them.

A request only binds values and runs a compiled statement on a pooled connection: no ORM session,
no SQL built per request. The SQL carries no values (they are parameters), so it can be logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from sqlalchemy import Table, bindparam
from sqlalchemy.dialects import registry
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import SQLModel

from service.db.slots import PoolSlots
from service.web.errors import unavailable

logger = logging.getLogger("service.store")

_CUSTOM_PLAN = "SET LOCAL plan_cache_mode = force_custom_plan"
STATEMENT_TIMEOUT_MESSAGE = "The database took too long to answer; try again shortly"
_DIALECT: Dialect = registry.load("postgresql.asyncpg")()
# No user holds more than a quarter of a worker's connections, so three busy users leave the rest
# to everyone else; a costly statement (a search planned for its value) runs one per user at a
# time, and at most a quarter of the pool runs such statements at all.
USER_SHARE = 0.25


def table(model: type[SQLModel]) -> Table:
    """The Core table of a SQLModel table model, for statements written against its typed columns."""
    return SQLModel.metadata.tables[str(model.__tablename__)]


def param(name: str, type_: Any = None) -> Any:
    """A named parameter: bound by name when the statement runs."""
    return bindparam(name, type_=type_)


@dataclass(frozen=True, slots=True)
class Query:
    """A statement compiled once: its SQL and the order its named parameters bind in."""

    sql: str
    names: tuple[str, ...]
    # Values the statement fixes itself (column defaults, literal nulls); the rest must be given.
    fixed: Mapping[str, Any]

    @classmethod
    def of(cls, statement: ClauseElement) -> Query:
        compiled = statement.compile(dialect=_DIALECT)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"not a SQL statement: {statement!r}")
        fixed = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
        return cls(str(compiled), tuple(compiled.positiontup or ()), fixed)

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] if name in values else self.fixed[name] for name in self.names]


class Held:
    """One statement's (or transaction's) hold on a pool connection.

    Entering waits for a slot, in arrival order, then takes a connection; leaving gives both back,
    and turns a statement that ran past the timeout into a logged 503. A class rather than
    generator-based context managers: every request passes here.
    """

    __slots__ = ("_conn", "_holder", "_query", "_runner")

    def __init__(self, runner: Runner, query: Query, holder: str | None) -> None:
        self._runner = runner
        self._query = query
        self._holder = holder

    async def __aenter__(self) -> PoolConnectionProxy:
        runner = self._runner
        slots = runner.slots
        await slots.acquire(self._holder)
        try:
            # A slot guarantees a free holder; opening a connection is bounded by the connect timeout.
            self._conn: PoolConnectionProxy = await runner.pool.acquire()
        except BaseException:
            slots.release(self._holder)
            raise
        return self._conn

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        runner = self._runner
        try:
            await runner.pool.release(self._conn)
        finally:
            runner.slots.release(self._holder)
        # The bound is asyncpg's per-call `timeout=`, which cancels the statement with a cancel
        # request: unlike a `statement_timeout` session setting, it also holds behind PgBouncer in
        # transaction mode, where no session setting survives the transaction.
        if exc_type is not None and issubclass(exc_type, (TimeoutError, asyncpg.QueryCanceledError)):
            logger.warning(
                "statement cancelled after %gs (%s): %.120s",
                runner.timeout,
                exc_type.__name__,
                " ".join(self._query.sql.split()),
            )
            raise unavailable(STATEMENT_TIMEOUT_MESSAGE) from None


class Runner:
    """Runs compiled statements on the pool, each bounded by the statement timeout; every store shares one."""

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float, statement_timeout: float) -> None:
        self.pool = pool
        self.timeout = statement_timeout
        size = pool.get_max_size()
        share = max(1, int(size * USER_SHARE))
        self.slots = PoolSlots(size, acquire_timeout, share)
        self.costly = PoolSlots(share, acquire_timeout, 1)

    def held(self, query: Query, user_id: str | None) -> Held:
        """A pool connection for `query` (and any transaction around it), as an async context manager."""
        return Held(self, query, user_id)

    async def one(self, query: Query, **values: Any) -> asyncpg.Record | None:
        async with Held(self, query, values.get("user_id")) as conn:
            return await conn.fetchrow(query.sql, *query.args(values), timeout=self.timeout)

    async def all(self, query: Query, **values: Any) -> list[asyncpg.Record]:
        async with Held(self, query, values.get("user_id")) as conn:
            return await conn.fetch(query.sql, *query.args(values), timeout=self.timeout)

    async def all_planned_per_value(self, query: Query, **values: Any) -> list[asyncpg.Record]:
        """Like `all`, but never on a generic plan.

        asyncpg prepares each statement once per connection, and after five runs PostgreSQL may
        settle on a generic plan, made without the values. SET LOCAL holds for this transaction
        only, so it is safe behind PgBouncer in transaction mode too. Such a statement may scan
        many rows, so it also takes a slot of the costly lane first (see USER_SHARE).
        """
        user_id = values.get("user_id")
        await self.costly.acquire(user_id)
        try:
            async with Held(self, query, user_id) as conn, conn.transaction(readonly=True):
                await conn.execute(_CUSTOM_PLAN, timeout=self.timeout)
                return await conn.fetch(query.sql, *query.args(values), timeout=self.timeout)
        finally:
            self.costly.release(user_id)

    async def execute(self, query: Query, **values: Any) -> str:
        async with Held(self, query, values.get("user_id")) as conn:
            return await conn.execute(query.sql, *query.args(values), timeout=self.timeout)

    async def count(self, query: Query, **values: Any) -> int:
        """Run a DELETE (or UPDATE) and say how many rows it touched."""
        status = await self.execute(query, **values)
        return int(status.rsplit(" ", 1)[-1])
