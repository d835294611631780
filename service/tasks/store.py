"""All SQL on tasks and idempotency keys. Every statement names its user: `WHERE user_id = :user_id`.

Statements are SQLAlchemy Core over the SQLModel tables, compiled once into asyncpg's `$n` form; a
request only binds values and runs them on a pooled asyncpg connection. What goes in and comes out
is typed: the body Structs of `schemas` in, `StoredTask` and `Page` out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, get_args

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy
from msgspec import UNSET
from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    Interval,
    LargeBinary,
    SmallInteger,
    Table,
    Text,
    bindparam,
    case,
    cast,
    func,
    null,
    or_,
    true,
    tuple_,
    union_all,
)
from sqlalchemy import any_ as sql_any
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, ColumnElement, delete, select, update
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import literal_column
from sqlmodel import SQLModel

from service.db.pool import PoolSlots
from service.tasks import positions
from service.tasks.models import IdempotencyKey, Task, TaskTagCount, TaskTombstone, User
from service.tasks.schemas import (
    ANCHOR_RULE,
    CURSOR_RULE,
    STATS_TAGS_MAX,
    ListQuery,
    SortName,
    TagCount,
    TaskCreate,
    TaskRead,
    TaskStats,
    TaskUpdate,
    tag_keys,
)
from service.web.errors import (
    TASK_NOT_FOUND,
    Conflict,
    NotFound,
    PreconditionFailed,
    QuotaExceeded,
    invalid,
    unavailable,
)

logger = logging.getLogger("service.store")

_CUSTOM_PLAN = "SET LOCAL plan_cache_mode = force_custom_plan"
STATEMENT_TIMEOUT_MESSAGE = "The database took too long to answer; try again shortly"
_DIALECT: Dialect = registry.load("postgresql.asyncpg")()


def _table(model: type[SQLModel]) -> Table:
    return SQLModel.metadata.tables[str(model.__tablename__)]


tasks = _table(Task)
users = _table(User)
keys = _table(IdempotencyKey)
tag_counts = _table(TaskTagCount)

# Abandoned claims (a worker died mid-request) are taken over after this long.
IN_FLIGHT_SECONDS = 60
IDEMPOTENCY_TTL_HOURS = 24
DEFAULT_MAX_TASKS = 100_000
# A move that meets a concurrent writer's locks starts again this many times before a 409.
MOVE_ATTEMPTS = 5


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
    def of(cls, statement: ClauseElement) -> Query:
        compiled = statement.compile(dialect=_DIALECT)
        if not isinstance(compiled, SQLCompiler):
            raise TypeError(f"not a SQL statement: {statement!r}")
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


class StoredTask(msgspec.Struct, frozen=True):
    """A task as stored: what the API shows of it, and the version its ETag is made from."""

    task: TaskRead
    version: int

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


class _Version(msgspec.Struct):
    version: int


_decode_read = msgspec.json.Decoder(TaskRead).decode
_decode_version = msgspec.json.Decoder(_Version).decode

# What a read returns: TaskRead's fields, by name, so a field added there is selected everywhere.
READ_COLUMNS = tuple(tasks.c[name] for name in TaskRead.__struct_fields__)
RETURNED = (*READ_COLUMNS, tasks.c.version)


def _bind_fields(schema: type[msgspec.Struct]) -> dict[str, Any]:
    """A typed parameter for each field of a body struct, named like the field and its column."""
    return {name: _p(name, tasks.c[name].type) for name in schema.__struct_fields__}


# The user's row counts their tasks and hands out the key of a new first task (positions.py): the
# upsert locks that row, so concurrent creates of one user take distinct keys, one after another.
_claim_slot = insert(users).values(
    id=_p("user_id", Text), task_count=literal_column("1"), position_head=literal_column("-1")
)
_slot = (
    _claim_slot.on_conflict_do_update(
        index_elements=[users.c.id],
        set_={
            "task_count": users.c.task_count + literal_column("1"),
            "position_head": users.c.position_head - literal_column("1"),
        },
        # At the quota the row is locked but not updated: nothing returns, so nothing is inserted.
        # The check reads the row's latest version (ON CONFLICT waits for concurrent creates), so
        # it is exact however many creates race.
        where=users.c.task_count < _p("max_tasks", Integer),
    )
    .returning(users.c.id, users.c.position_head)
    .cte("slot")
)


def _int_key(n: ColumnElement[Any]) -> ColumnElement[str]:
    """positions.int_key in SQL: built-in functions only, so a statement can make keys itself."""
    shifted = func.to_hex(n + literal_column(str(positions.ORIGIN)))
    return func.lpad(shifted, literal_column(str(positions.INT_WIDTH)), literal_column("'0'"))


_first_position = _int_key(_slot.c.position_head)
_TAG_KEYS = _p("tag_keys", ARRAY(Text))
_insert_task = insert(tasks).from_select(
    ["user_id", "id", "created_at", "updated_at", "position", "tag_keys", *TaskCreate.__struct_fields__],
    select(
        _slot.c.id,
        _p("task_id", tasks.c.id.type),
        _p("now", tasks.c.created_at.type),
        _p("now", tasks.c.created_at.type),
        _first_position,
        _TAG_KEYS,
        *_bind_fields(TaskCreate).values(),
    ),
)
_new_task = _insert_task.returning(*tasks.c).cte("new_task")
# The replay of an Idempotency-Key is the row PostgreSQL returned, stored by the statement that
# creates it: both happen or neither.
_complete_key = (
    update(keys)
    .where(keys.c.user_id == _p("user_id", Text), keys.c.key == _p("key", Text))
    .values(
        status=_p("status", SmallInteger),
        response=func.convert_to(cast(func.row_to_json(_new_task.table_valued()), Text), "UTF8"),
    )
    .cte("completed_key")
)


def _completed_at(completed: ColumnElement[bool]) -> ColumnElement[Any]:
    """When `completed` last became true: kept while it stays true (set to the same value), else cleared."""
    return case((completed, func.coalesce(tasks.c.completed_at, _p("now"))), else_=None)


CREATE = Query.of(_insert_task.returning(*RETURNED))
CREATE_WITH_KEY = Query.of(select(*(_new_task.c[c.name] for c in RETURNED)).add_cte(_new_task, _complete_key))
GET = Query.of(select(*RETURNED).where(*_OWNED))
EXISTS = Query.of(select(tasks.c.version).where(*_OWNED))
# Every field of TaskUpdate: set when given (`set_<name>`), else kept; null is a value (description).
UPDATE = Query.of(
    update(tasks)
    .where(*_OWNED, _MATCHES)
    .values(
        **{
            name: case((_p(f"set_{name}", Boolean), param), else_=tasks.c[name])
            for name, param in _bind_fields(TaskUpdate).items()
        },
        completed_at=_completed_at(
            case((_p("set_completed", Boolean), _p("completed", Boolean)), else_=tasks.c.completed)
        ),
        tag_keys=case((_p("set_tags", Boolean), _TAG_KEYS), else_=tasks.c.tag_keys),
        **_BUMP,
    )
    .returning(*RETURNED)
)
SET_COMPLETED = Query.of(
    update(tasks)
    .where(*_OWNED, _MATCHES)
    .values(
        completed=func.coalesce(_p("completed", Boolean), ~tasks.c.completed),
        completed_at=_completed_at(func.coalesce(_p("completed", Boolean), ~tasks.c.completed)),
        **_BUMP,
    )
    .returning(*RETURNED)
)
_deleted = delete(tasks).where(*_OWNED, _MATCHES).returning(*RETURNED).cte("deleted")
# The count goes down only for a row this statement deleted (a concurrent DELETE of it finds none).
_uncount = (
    update(users)
    .where(users.c.id == _p("user_id", Text), select(_deleted.c.id).exists())
    .values(task_count=users.c.task_count - literal_column("1"))
    .cte("uncounted")
)
DELETE = Query.of(select(*(_deleted.c[c.name] for c in RETURNED)).add_cte(_uncount))

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

# The manual order (service/tasks/positions.py). Every statement that writes a position first locks the
# user's row (a create through its upsert), so positions are written one at a time per user and a
# key computed from the rows it just read is still free when it is written. A move locks its task
# first and the user's row second, the order a DELETE takes them in (task row, then the count).
LOCK_TASK = Query.of(select(tasks.c.version, tasks.c.position).where(*_OWNED).with_for_update(key_share=True))
LOCK_USER = Query.of(
    select(users.c.position_head).where(users.c.id == _p("user_id", Text)).with_for_update(key_share=True)
)
_anchor = tasks.alias("anchor")
_other = tasks.alias("other")


def _nearest(aggregate: Callable[[Any], Any], before: bool) -> Any:
    """The position next to the anchor on one side, leaving out the task being moved."""
    beside = _other.c.position < _anchor.c.position if before else _other.c.position > _anchor.c.position
    return (
        select(aggregate(_other.c.position))
        .where(_other.c.user_id == _anchor.c.user_id, beside, _other.c.id != _p("task_id"))
        .scalar_subquery()
    )


NEIGHBOURS = Query.of(
    select(
        _anchor.c.position,
        _nearest(func.max, True).label("previous"),
        _nearest(func.min, False).label("next"),
    ).where(_anchor.c.user_id == _p("user_id", Text), _anchor.c.id == _p("anchor_id", tasks.c.id.type))
)
_head = _p("head", users.c.position_head.type)
# Statements of their own, never CTEs beside a write to tasks: a trigger on tasks may write the
# user's row too (the changes feed numbers every change there), and PostgreSQL refuses a statement
# that writes one row both in its own body and in a trigger it fires.
SET_HEAD = Query.of(update(users).where(users.c.id == _p("user_id", Text)).values(position_head=_head))
MOVE = Query.of(
    update(tasks).where(*_OWNED).values(position=_p("position", Text), **_BUMP).returning(*RETURNED)
)
# A rebalance waits for no row: a task locked by another writer (who may be waiting for the
# user's row this move holds) makes it fail at once, and the move starts again.
LOCK_ALL = Query.of(
    select(tasks.c.id)
    .where(tasks.c.user_id == _p("user_id", Text))
    .with_for_update(key_share=True, nowait=True)
)
_ordered = (
    select(
        tasks.c.id,
        (func.row_number().over(order_by=tasks.c.position) - literal_column("1")).label("n"),
        func.count().over().label("total"),
    )
    .where(tasks.c.user_id == _p("user_id", Text))
    .cte("ordered")
)
# Consecutive integers below every current key, so no new key meets an old one (the unique index
# is checked row by row); the user's head moves down past them. Versions change (new ETags),
# updated_at does not: nobody edited these tasks.
_renumbered = (
    update(tasks)
    .where(tasks.c.user_id == _p("user_id", Text), tasks.c.id == _ordered.c.id)
    .values(
        position=_int_key(_head - _ordered.c.total + _ordered.c.n),
        version=tasks.c.version + literal_column("1"),
    )
    .returning(tasks.c.id)
    .cte("renumbered")
)
# How many tasks it renumbered: the user's head then moves down past them (SET_HEAD).
REBALANCE = Query.of(select(func.count()).select_from(_renumbered))

_active = ~tasks.c.completed & (tasks.c.user_id == _p("user_id", Text))
# Tags are counted by their folded form and shown in the spelling most tasks use (ties: the first
# by code point), from the per-spelling counts the triggers keep (sql/006): one row per spelling.
_shown_name = func.array_agg(
    aggregate_order_by(tag_counts.c.tag, tag_counts.c.tasks.desc(), tag_counts.c.tag)
)[1]
_tag_counts = (
    select(_shown_name.label("name"), func.sum(tag_counts.c.tasks).label("count"))
    .where(tag_counts.c.user_id == _p("user_id", Text), tag_counts.c.tasks > literal_column("0"))
    .group_by(tag_counts.c.tag_key)
    .order_by(func.sum(tag_counts.c.tasks).desc(), _shown_name)
    .limit(literal_column(str(STATS_TAGS_MAX)))
    .cte("tag_totals")
)
_tag_order = (_tag_counts.c.count.desc(), _tag_counts.c.name.collate("C"))
_mine = tasks.c.user_id == _p("user_id", Text)
STATS = Query.of(
    select(
        func.coalesce(
            select(users.c.task_count).where(users.c.id == _p("user_id", Text)).scalar_subquery(),
            literal_column("0"),
        ).label("total"),
        func.coalesce(
            select(users.c.completed_count).where(users.c.id == _p("user_id", Text)).scalar_subquery(),
            literal_column("0"),
        ).label("completed"),
        select(func.count())
        .where(_active, tasks.c.due_at < _p("now", tasks.c.due_at.type))
        .scalar_subquery()
        .label("overdue"),
        select(func.array_agg(aggregate_order_by(_tag_counts.c.name, *_tag_order)))
        .scalar_subquery()
        .label("tag_names"),
        select(func.array_agg(aggregate_order_by(_tag_counts.c.count, *_tag_order)))
        .scalar_subquery()
        .label("tag_counts"),
    )
)
# One statement, so one transaction: the count goes down by exactly the rows it deleted.
_cleared = delete(tasks).where(_mine, tasks.c.completed).returning(tasks.c.id).cte("cleared")
_cleared_count = select(func.count()).select_from(_cleared).scalar_subquery()
_uncount_cleared = (
    update(users)
    .where(users.c.id == _p("user_id", Text), _cleared_count > literal_column("0"))
    .values(task_count=users.c.task_count - _cleared_count)
    .cte("uncounted_cleared")
)
CLEAR_COMPLETED = Query.of(select(_cleared_count.label("deleted")).add_cte(_uncount_cleared))


class KeyState(msgspec.Struct, frozen=True):
    """An Idempotency-Key as stored: in flight while `status` is None, else the created task's JSON."""

    request_hash: bytes
    status: int | None
    response: bytes | None


_FIELD_TYPES = {f.name: f.type for f in msgspec.structs.fields(TaskRead)}


@dataclass(frozen=True, slots=True)
class SortKey:
    """One term of an order: the expression rows are compared by, and the TaskRead field holding it.

    A nullable field names what a missing value sorts as (`missing`, SQL): the column and the
    cursor's value are both compared through `coalesce(…, missing)`, as the index is built.
    """

    column: ColumnElement[Any]
    field: str
    missing: str | None = None

    def expression(self) -> ColumnElement[Any]:
        return (
            self.column if self.missing is None else func.coalesce(self.column, literal_column(self.missing))
        )

    def value(self, index: int) -> ColumnElement[Any]:
        param = _p(f"after_{index}", self.column.type)
        return param if self.missing is None else func.coalesce(param, literal_column(self.missing))


@dataclass(frozen=True, slots=True)
class Sort:
    """One order of the listing: its keys, most significant first, then id, all one direction.

    A page's position is the last task's key values; the next page is the rows strictly past it.
    A sort whose keys are unique by themselves (`position`) needs no id to break ties.
    """

    name: str
    keys: tuple[SortKey, ...]
    descending: bool
    by_id: bool = True

    @property
    def _all_keys(self) -> tuple[SortKey, ...]:
        return (*self.keys, SortKey(tasks.c.id, "id")) if self.by_id else self.keys

    def order(self) -> list[ColumnElement[Any]]:
        return [k.expression().desc() if self.descending else k.expression().asc() for k in self._all_keys]

    def after(self) -> ColumnElement[bool]:
        """Rows strictly past the position (`after_0`, `after_1`, ...) in this order: the keyset condition."""
        keys = self._all_keys
        here = tuple_(*(k.expression() for k in keys))
        there = tuple_(*(k.value(i) for i, k in enumerate(keys)))
        return here < there if self.descending else here > there

    def position(self, task: TaskRead) -> bytes:
        return msgspec.json.encode([getattr(task, k.field) for k in self._all_keys])

    def after_values(self, position: bytes) -> dict[str, Any]:
        """The keyset parameters for a position this sort wrote; ValueError if it did not."""
        kind = tuple.__class_getitem__(tuple(_FIELD_TYPES[k.field] for k in self._all_keys))
        try:
            values = msgspec.json.decode(position, type=kind)
        except msgspec.DecodeError as exc:
            raise ValueError(str(exc)) from None
        return {f"after_{i}": value for i, value in enumerate(values)}


def _sorts(*keys: tuple[str, tuple[SortKey, ...]]) -> dict[str, Sort]:
    return {f"{sign}{name}": Sort(f"{sign}{name}", k, sign == "-") for name, k in keys for sign in ("", "-")}


SORTS: dict[str, Sort] = {
    **_sorts(
        ("created_at", (SortKey(tasks.c.created_at, "created_at"),)),
        ("updated_at", (SortKey(tasks.c.updated_at, "updated_at"),)),
        # Code-point order, as the contract decides.
        ("title", (SortKey(tasks.c.title.collate("C"), "title"),)),
        # The enum's order is the rank's: none, low, medium, high.
        ("priority", (SortKey(tasks.c.priority, "priority"), SortKey(tasks.c.created_at, "created_at"))),
    ),
    # Tasks without a due date come last both ways: as +infinity going up, as -infinity going down.
    "due_at": Sort("due_at", (SortKey(tasks.c.due_at, "due_at", "'infinity'::timestamptz"),), False),
    "-due_at": Sort("-due_at", (SortKey(tasks.c.due_at, "due_at", "'-infinity'::timestamptz"),), True),
    # Positions are unique per user (sql/003), so the manual order needs no tie-break.
    "position": Sort("position", (SortKey(tasks.c.position, "position"),), False, by_id=False),
}
if set(SORTS) != set(get_args(SortName)):
    raise RuntimeError("schemas.SortName and SORTS must list the same sorts")


def like_pattern(text: str) -> str:
    """A literal, case-insensitive substring pattern: %, _ and \\ match themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True, slots=True)
class Filter:
    """A listing parameter that narrows the rows: its condition, and how its value binds.

    `by_value`: the best plan depends on the value (a rare text wants the trigram index, a common
    one the user's ordered index), so the statement is planned for each value, never generically.
    """

    condition: ColumnElement[bool]
    bind: Callable[[Any], Mapping[str, Any]]
    by_value: bool = False


_PATTERN = _p("pattern", Text)
# Keyed by ListQuery field: a field given (not UNSET) adds its condition.
FILTERS: dict[str, Filter] = {
    "completed": Filter(tasks.c.completed == _p("completed", Boolean), lambda v: {"completed": v == "true"}),
    "q": Filter(
        or_(tasks.c.title.ilike(_PATTERN, escape="\\"), tasks.c.description.ilike(_PATTERN, escape="\\")),
        lambda v: {"pattern": like_pattern(v)},
        by_value=True,
    ),
    "priority": Filter(tasks.c.priority == _p("priority", tasks.c.priority.type), lambda v: {"priority": v}),
    # ListQuery folds the tags as the store folds tag_keys; every one must be there.
    "tag": Filter(tasks.c.tag_keys.contains(_p("tags", ARRAY(Text))), lambda v: {"tags": v}),
    # A null due_at compares as unknown: a task without one never matches.
    "due_min": Filter(tasks.c.due_at >= _p("due_min", tasks.c.due_at.type), lambda v: {"due_min": v}),
    "due_max": Filter(tasks.c.due_at < _p("due_max", tasks.c.due_at.type), lambda v: {"due_max": v}),
}
# Every other query parameter shapes the page rather than the rows.
if set(ListQuery.__struct_fields__) != {*FILTERS, "sort", "limit", "cursor"}:
    raise RuntimeError("every ListQuery field but sort, limit and cursor needs its Filter")


@functools.cache
def list_query(sort: str, filters: tuple[str, ...], after: bool) -> Query:
    """The listing statement for one sort, a set of filters and first/next page; compiled once each."""
    conditions: list[ColumnElement[bool]] = [tasks.c.user_id == _p("user_id", Text)]
    conditions += [FILTERS[name].condition for name in filters]
    if after:
        conditions.append(SORTS[sort].after())
    statement = (
        select(*READ_COLUMNS).where(*conditions).order_by(*SORTS[sort].order()).limit(_p("limit", Integer))
    )
    return Query.of(statement)


class Page(msgspec.Struct, frozen=True):
    """One page of a listing, and the position after its last task when more follow."""

    items: list[TaskRead]
    next: bytes | None


def _changes(changes: msgspec.Struct) -> dict[str, Any]:
    """UPDATE's parameters for a partial body: each field's value and whether it was given."""
    values: dict[str, Any] = {}
    for name in changes.__struct_fields__:
        value = getattr(changes, name)
        values[f"set_{name}"] = value is not UNSET
        values[name] = None if value is UNSET else value
    return values


class _Held:
    """One statement's (or transaction's) hold on a pool connection.

    Entering waits for a slot, in arrival order, then takes a connection; leaving gives both back,
    and turns a statement that ran past the timeout into a logged 503. A class rather than
    generator-based context managers: every request passes here.
    """

    __slots__ = ("_conn", "_query", "_store")

    def __init__(self, store: TaskStore, query: Query) -> None:
        self._store = store
        self._query = query

    async def __aenter__(self) -> PoolConnectionProxy:
        store = self._store
        slots = store._slots
        await slots.acquire()
        try:
            # A slot guarantees a free holder; opening a connection is bounded by the connect timeout.
            self._conn: PoolConnectionProxy = await store._pool.acquire()
        except BaseException:
            slots.release()
            raise
        return self._conn

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        store = self._store
        try:
            await store._pool.release(self._conn)
        finally:
            store._slots.release()
        # The bound is asyncpg's per-call `timeout=`, which cancels the statement with a cancel
        # request: unlike a `statement_timeout` session setting, it also holds behind PgBouncer in
        # transaction mode, where no session setting survives the transaction.
        if exc_type is not None and issubclass(exc_type, (TimeoutError, asyncpg.QueryCanceledError)):
            # The SQL carries no values (they are parameters), so it can be logged as it is.
            logger.warning(
                "statement cancelled after %gs (%s): %.120s",
                store._statement_timeout,
                exc_type.__name__,
                " ".join(self._query.sql.split()),
            )
            raise unavailable(STATEMENT_TIMEOUT_MESSAGE) from None


class TaskStore:
    """Runs the statements above on the pool; every method takes the owner's id."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        acquire_timeout: float,
        statement_timeout: float,
        max_tasks: int = DEFAULT_MAX_TASKS,
    ) -> None:
        self._pool = pool
        self._statement_timeout = statement_timeout
        self._max_tasks = max_tasks
        self._slots = PoolSlots(pool.get_max_size(), acquire_timeout)

    def _held(self, query: Query) -> _Held:
        """A pool connection for `query` (and any transaction around it), as an async context manager."""
        return _Held(self, query)

    async def _one(self, query: Query, **values: Any) -> asyncpg.Record | None:
        async with self._held(query) as conn:
            return await conn.fetchrow(query.sql, *query.args(values), timeout=self._statement_timeout)

    async def _all(self, query: Query, **values: Any) -> list[asyncpg.Record]:
        async with self._held(query) as conn:
            return await conn.fetch(query.sql, *query.args(values), timeout=self._statement_timeout)

    async def _all_planned_per_value(self, query: Query, **values: Any) -> list[asyncpg.Record]:
        """Like `_all`, but never on a generic plan.

        asyncpg prepares each statement once per connection, and after five runs PostgreSQL may
        settle on a generic plan, made without the values. SET LOCAL holds for this transaction
        only, so it is safe behind PgBouncer in transaction mode too.
        """
        async with self._held(query) as conn, conn.transaction(readonly=True):
            await conn.execute(_CUSTOM_PLAN, timeout=self._statement_timeout)
            return await conn.fetch(query.sql, *query.args(values), timeout=self._statement_timeout)

    async def _execute(self, query: Query, **values: Any) -> str:
        async with self._held(query) as conn:
            return await conn.execute(query.sql, *query.args(values), timeout=self._statement_timeout)

    async def _task(self, query: Query, **values: Any) -> StoredTask | None:
        row = await self._one(query, **values)
        return None if row is None else StoredTask.from_row(row)

    async def create(
        self,
        user_id: str,
        task_id: uuid.UUID,
        now: datetime,
        body: TaskCreate,
        *,
        key: str | None = None,
    ) -> StoredTask:
        """Insert the task (and its user on their first write); with `key`, complete that key too."""
        values = {
            "user_id": user_id,
            "task_id": task_id,
            "now": now,
            "max_tasks": self._max_tasks,
            "tag_keys": tag_keys(body.tags),
            **msgspec.structs.asdict(body),
        }
        if key is None:
            row = await self._one(CREATE, **values)
        else:
            row = await self._one(CREATE_WITH_KEY, key=key, status=201, **values)
        if row is None:  # the user's row said no: they hold MAX_TASKS_PER_USER tasks already
            raise QuotaExceeded(f"You already hold the most tasks allowed: {self._max_tasks:,}")
        return StoredTask.from_row(row)

    async def get(self, user_id: str, task_id: uuid.UUID) -> StoredTask | None:
        return await self._task(GET, user_id=user_id, task_id=task_id)

    async def exists(self, user_id: str, task_id: uuid.UUID) -> bool:
        return await self._one(EXISTS, user_id=user_id, task_id=task_id) is not None

    async def update(
        self, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None, changes: TaskUpdate
    ) -> StoredTask | None:
        """Apply the fields `changes` gives; None when no task of this user matches `versions`."""
        keys = None if changes.tags is UNSET else tag_keys(changes.tags)
        return await self._task(
            UPDATE,
            user_id=user_id,
            task_id=task_id,
            versions=versions,
            now=utc_now(),
            tag_keys=keys,
            **_changes(changes),
        )

    async def set_completed(
        self, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None, completed: bool | None
    ) -> StoredTask | None:
        """Set `completed`, or toggle it when None, in one statement: concurrent toggles never lose one."""
        return await self._task(
            SET_COMPLETED,
            user_id=user_id,
            task_id=task_id,
            versions=versions,
            completed=completed,
            now=utc_now(),
        )

    async def delete(
        self, user_id: str, task_id: uuid.UUID, versions: Sequence[int] | None
    ) -> StoredTask | None:
        return await self._task(DELETE, user_id=user_id, task_id=task_id, versions=versions)

    async def move(
        self,
        user_id: str,
        task_id: uuid.UUID,
        versions: Sequence[int] | None,
        anchor_id: uuid.UUID,
        after: bool,
    ) -> StoredTask:
        """Put the task right after (or before) the anchor, rewriting its row alone (rarely a rebalance).

        A move that meets a concurrent writer's locks (only a rebalance can) starts again, a few
        times, then answers 409.
        """
        for attempt in range(MOVE_ATTEMPTS):
            try:
                async with self._held(MOVE) as conn, conn.transaction():
                    return await self._move(conn, user_id, task_id, versions, anchor_id, after)
            except (asyncpg.LockNotAvailableError, asyncpg.DeadlockDetectedError):
                await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))  # noqa: S311 - jitter
        raise Conflict("The task list is being reordered by another request; try again")

    async def _move(
        self,
        conn: PoolConnectionProxy,
        user_id: str,
        task_id: uuid.UUID,
        versions: Sequence[int] | None,
        anchor_id: uuid.UUID,
        after: bool,
    ) -> StoredTask:
        mine = {"user_id": user_id, "task_id": task_id}
        bound = self._statement_timeout
        task = await conn.fetchrow(LOCK_TASK.sql, *LOCK_TASK.args(mine), timeout=bound)
        if task is None:
            raise NotFound(TASK_NOT_FOUND)
        if versions is not None and task["version"] not in versions:
            raise PreconditionFailed()
        head: int = await conn.fetchval(LOCK_USER.sql, *LOCK_USER.args(mine), timeout=bound)
        values = {**mine, "anchor_id": anchor_id}
        start = head
        for rebalanced in (False, True):
            around = await conn.fetchrow(NEIGHBOURS.sql, *NEIGHBOURS.args(values), timeout=bound)
            if around is None:
                raise invalid("after" if after else "before", ANCHOR_RULE)
            low, high = (
                (around["position"], around["next"]) if after else (around["previous"], around["position"])
            )
            if low is None:
                # The front: a fresh integer below every key, from the counter creates use too.
                head -= 1
                key = positions.int_key(head)
            else:
                key = positions.key_between(low, high)
            if rebalanced or not positions.too_long(key):
                break
            await conn.execute(LOCK_ALL.sql, *LOCK_ALL.args(mine), timeout=bound)
            head -= await conn.fetchval(REBALANCE.sql, *REBALANCE.args({**mine, "head": head}), timeout=bound)
        if head != start:
            await conn.execute(SET_HEAD.sql, *SET_HEAD.args({**mine, "head": head}), timeout=bound)
        row = await conn.fetchrow(
            MOVE.sql, *MOVE.args({**mine, "position": key, "now": utc_now()}), timeout=bound
        )
        if row is None:  # the task is locked by this transaction: it cannot be gone
            raise RuntimeError("the locked task was not updated")
        return StoredTask.from_row(row)

    async def stats(self, user_id: str) -> TaskStats:
        row = await self._one(STATS, user_id=user_id, now=utc_now())
        if row is None:  # a SELECT without FROM returns its one row
            raise RuntimeError("the stats query returned no row")
        names, counts = row["tag_names"] or [], row["tag_counts"] or []
        return TaskStats(
            total=row["total"],
            active=row["total"] - row["completed"],
            completed=row["completed"],
            overdue=row["overdue"],
            tags=[TagCount(name, count) for name, count in zip(names, counts, strict=True)],
        )

    async def clear_completed(self, user_id: str) -> int:
        """Delete every completed task of the user, in one statement; how many there were."""
        deleted = await self._one(CLEAR_COMPLETED, user_id=user_id)
        if deleted is None:  # likewise
            raise RuntimeError("clear-completed returned no row")
        return int(deleted["deleted"])

    async def list(self, user_id: str, query: ListQuery, after: bytes | None = None) -> Page:
        """One page of `query`, starting past the position `after` (from an earlier Page.next)."""
        sort = SORTS[query.sort]
        filters = tuple(name for name in FILTERS if getattr(query, name) is not UNSET)
        values: dict[str, Any] = {"user_id": user_id, "limit": query.limit + 1}
        for name in filters:
            values.update(FILTERS[name].bind(getattr(query, name)))
        if after is not None:
            try:
                values.update(sort.after_values(after))
            except ValueError:
                raise invalid("cursor", CURSOR_RULE) from None
        # One row past the page tells whether another page follows, without a count.
        statement = list_query(query.sort, filters, after is not None)
        if any(FILTERS[name].by_value for name in filters):
            rows = await self._all_planned_per_value(statement, **values)
        else:
            rows = await self._all(statement, **values)
        items = [TaskRead(*row) for row in rows[: query.limit]]
        more = len(rows) > query.limit
        return Page(items, sort.position(items[-1]) if more else None)

    async def claim_key(self, user_id: str, key: str, request_hash: bytes) -> bool:
        """Take an idempotency key for a new request; False when it is already taken."""
        return await self._one(CLAIM_KEY, user_id=user_id, key=key, request_hash=request_hash) is not None

    async def find_key(self, user_id: str, key: str) -> KeyState | None:
        row = await self._one(FIND_KEY, user_id=user_id, key=key)
        return None if row is None else KeyState(*row)

    async def release_key(self, user_id: str, key: str) -> None:
        await self._execute(RELEASE_KEY, user_id=user_id, key=key)

    async def purge_keys(self) -> int:
        status = await self._execute(PURGE_KEYS)
        return int(status.rsplit(" ", 1)[-1])


# --- Sync: the changes feed (CONTRACT section 9) -----------------------------------------------
#
# Triggers (sql/004_changes.sql) number every write with the user's next change number, taken
# under the user row's lock, so one user's numbers follow commit order; a deleted task leaves a
# tombstone with its own number. A page is every row of either kind past a number, in number
# order, read with the user's latest number from the same snapshot: everything up to that number
# is visible in it, so a client that continues from there never skips a change.

tombstones = TaskTombstone.__table__  # type: ignore[attr-defined]

_USER = _p("user_id", Text)
_SINCE = _p("since", BigInteger)
_upserts = select(tasks.c.change_seq.label("seq"), null().label("deleted_at"), *READ_COLUMNS).where(
    tasks.c.user_id == _USER, tasks.c.change_seq > _SINCE
)
# A deletion has only an id and a time; the task's other columns are null.
_deletions = select(
    tombstones.c.change_seq,
    tombstones.c.deleted_at,
    *(tombstones.c.id if c.name == "id" else null().label(c.name) for c in READ_COLUMNS),
).where(tombstones.c.user_id == _USER, tombstones.c.change_seq > _SINCE)
# The page's columns before the task's: the clock, the user's latest number, the row's number
# and its deletion time.
_BEFORE_TASK = 4
# The database's clock, so token times and tombstone times come from one clock; one row always.
_clock = select(func.statement_timestamp().label("read_at")).subquery("clock")


def _with_head(page: Any) -> Query:
    """A page with the user's latest change number beside it (null when they never wrote)."""
    return Query.of(
        select(_clock.c.read_at, users.c.change_seq.label("head_seq"), page)
        .select_from(_clock.outerjoin(users, users.c.id == _USER).outerjoin(page, true()))
        .order_by(page.c.seq)
    )


_LIMIT = _p("limit", Integer)
CHANGES_SINCE = _with_head(
    union_all(_upserts, _deletions).order_by(literal_column("seq")).limit(_LIMIT).subquery("page")
)
# A full sync has no deletions to report: the client starts from nothing.
CHANGES_ALL = _with_head(_upserts.order_by(tasks.c.change_seq).limit(_LIMIT).subquery("page"))
HEAD = Query.of(
    select(_clock.c.read_at, users.c.change_seq.label("head_seq")).select_from(
        _clock.outerjoin(users, users.c.id == _USER)
    )
)
# Maintenance across all users: it only forgets tombstones past the retention.
PURGE_TOMBSTONES = Query.of(
    delete(tombstones).where(tombstones.c.deleted_at < func.now() - _p("keep", Interval))
)


class Deleted(msgspec.Struct, frozen=True):
    """A tombstone: the task that was deleted, and when."""

    id: uuid.UUID
    deleted_at: datetime


class Change(msgspec.Struct, frozen=True):
    """One entry of the feed: the task's latest state, or its deletion; `seq` orders them."""

    seq: int
    change: TaskRead | Deleted


class ChangePage(msgspec.Struct, frozen=True):
    """Changes in number order, and the user's latest number in the same snapshot, read then."""

    changes: list[Change]
    head: int
    read_at: datetime


class ChangeStore:
    """The feed's statements, run on the task store's pool; every one names its user."""

    def __init__(self, store: TaskStore) -> None:
        self._store = store

    async def changes(self, user_id: str, since: int | None, limit: int) -> ChangePage:
        """Up to `limit` changes after `since` (every task when None), oldest first."""
        query = CHANGES_ALL if since is None else CHANGES_SINCE
        rows = await self._store._all(query, user_id=user_id, since=since or 0, limit=limit)
        first = rows[0]
        changes = [
            Change(row["seq"], TaskRead(*row[_BEFORE_TASK:]))
            if row["deleted_at"] is None
            else Change(row["seq"], Deleted(row["id"], row["deleted_at"]))
            for row in rows
            if row["seq"] is not None
        ]
        return ChangePage(changes, first["head_seq"] or 0, first["read_at"])

    async def head(self, user_id: str) -> tuple[int, datetime]:
        """The user's latest change number (0 before their first write), and the database's time."""
        row = await self._store._one(HEAD, user_id=user_id)
        assert row is not None
        return row["head_seq"] or 0, row["read_at"]

    async def purge_tombstones(self, keep: timedelta) -> int:
        status = await self._store._execute(PURGE_TOMBSTONES, keep=keep)
        return int(status.rsplit(" ", 1)[-1])
