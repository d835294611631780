"""The changes feed's statements: what changed in one user's tasks past a change number, in order.

Triggers (sql/004_changes.sql) number every write with the user's next change number, taken
under the user row's lock, so one user's numbers follow commit order; a deleted task leaves a
tombstone with its own number. A page is every row of either kind past a number, in number
order, read with the user's latest number from the same snapshot: everything up to that number
is visible in it, so a client that continues from there never skips a change.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import BigInteger, Integer, Interval, func, null, true, union_all
from sqlalchemy.sql import delete, select, update
from sqlalchemy.sql.expression import literal_column

from service.db.statements import Query, Runner, param, table
from service.sync.schemas import Change, Deletion, Upsert
from service.tasks.columns import READ_COLUMNS, USER, tasks, users
from service.tasks.models import TaskTombstone
from service.tasks.schemas import TaskRead

tombstones = table(TaskTombstone)

_SINCE = param("since", BigInteger)
_upserts = select(tasks.c.change_seq.label("seq"), null().label("deleted_at"), *READ_COLUMNS).where(
    tasks.c.user_id == USER, tasks.c.change_seq > _SINCE
)
# A deletion has only an id and a time; the task's other columns are null.
_deletions = select(
    tombstones.c.change_seq,
    tombstones.c.deleted_at,
    *(tombstones.c.id if c.name == "id" else null().label(c.name) for c in READ_COLUMNS),
).where(tombstones.c.user_id == USER, tombstones.c.change_seq > _SINCE)
# The page's columns before the task's: the clock, the user's latest number, the horizon of the
# tombstones forgotten by number, the row's number and its deletion time.
_BEFORE_TASK = 5
# The database's clock, so token times and tombstone times come from one clock; one row always.
_clock = select(func.statement_timestamp().label("read_at")).subquery("clock")


def _with_head(page: Any) -> Query:
    """A page with the user's latest change number beside it (null when they never wrote)."""
    return Query.of(
        select(_clock.c.read_at, users.c.change_seq.label("head_seq"), users.c.tombstone_horizon, page)
        .select_from(_clock.outerjoin(users, users.c.id == USER).outerjoin(page, true()))
        .order_by(page.c.seq)
    )


_LIMIT = param("limit", Integer)
CHANGES_SINCE = _with_head(
    union_all(_upserts, _deletions).order_by(literal_column("seq")).limit(_LIMIT).subquery("page")
)
# A full sync has no deletions to report: the client starts from nothing.
CHANGES_ALL = _with_head(_upserts.order_by(tasks.c.change_seq).limit(_LIMIT).subquery("page"))
HEAD = Query.of(
    select(_clock.c.read_at, users.c.change_seq.label("head_seq")).select_from(
        _clock.outerjoin(users, users.c.id == USER)
    )
)
# Maintenance across all users: it only forgets tombstones past the retention.
PURGE_TOMBSTONES = Query.of(
    delete(tombstones).where(tombstones.c.deleted_at < func.now() - param("keep", Interval))
)


# Maintenance across all users: each user keeps their newest `most` tombstones; the highest number
# forgotten becomes their horizon, in the same statement, so no token slips between the two.
_ranked = select(
    tombstones.c.user_id,
    tombstones.c.change_seq,
    func.row_number()
    .over(partition_by=tombstones.c.user_id, order_by=tombstones.c.change_seq.desc())
    .label("rank"),
).cte("ranked")
_forgotten = (
    delete(tombstones)
    .where(
        tombstones.c.user_id == _ranked.c.user_id,
        tombstones.c.change_seq == _ranked.c.change_seq,
        _ranked.c.rank > param("most", Integer),
    )
    .returning(tombstones.c.user_id, tombstones.c.change_seq)
    .cte("forgotten")
)
_tops = (
    select(_forgotten.c.user_id, func.max(_forgotten.c.change_seq).label("top"))
    .group_by(_forgotten.c.user_id)
    .subquery("tops")
)
_raised = (
    update(users)
    .where(users.c.id == _tops.c.user_id, users.c.tombstone_horizon < _tops.c.top)
    .values(tombstone_horizon=_tops.c.top)
    .returning(users.c.id)
    .cte("raised")
)
BOUND_TOMBSTONES = Query.of(
    select(select(func.count()).select_from(_forgotten).scalar_subquery().label("forgotten")).add_cte(_raised)
)


class ChangePage(msgspec.Struct, frozen=True):
    """Changes in number order (`seqs[i]` numbers `changes[i]`), and the user's latest number in the
    same snapshot, read then."""

    changes: list[Change]
    seqs: list[int]
    head: int
    # A `since` below this may have missed a deletion whose tombstone was forgotten.
    horizon: int
    read_at: datetime


class ChangeStore:
    """The feed's statements, run on the shared runner; every one names its user."""

    def __init__(self, runner: Runner) -> None:
        self._runner = runner

    async def changes(self, user_id: str, since: int | None, limit: int) -> ChangePage:
        """Up to `limit` changes after `since` (every task when None), oldest first."""
        query = CHANGES_ALL if since is None else CHANGES_SINCE
        rows = await self._runner.all(query, user_id=user_id, since=since or 0, limit=limit)
        first = rows[0]
        rows = [row for row in rows if row["seq"] is not None]
        changes: list[Change] = [
            Upsert(TaskRead(*row[_BEFORE_TASK:]))
            if row["deleted_at"] is None
            else Deletion(row["id"], row["deleted_at"])
            for row in rows
        ]
        return ChangePage(
            changes,
            [row["seq"] for row in rows],
            first["head_seq"] or 0,
            first["tombstone_horizon"] or 0,
            first["read_at"],
        )

    async def head(self, user_id: str) -> tuple[int, datetime]:
        """The user's latest change number (0 before their first write), and the database's time."""
        row = await self._runner.one(HEAD, user_id=user_id)
        assert row is not None
        return row["head_seq"] or 0, row["read_at"]

    async def purge_tombstones(self, keep: timedelta, most: int) -> int:
        """Forget tombstones older than `keep`, then each user's beyond their newest `most`."""
        forgotten = await self._runner.count(PURGE_TOMBSTONES, keep=keep)
        row = await self._runner.one(BOUND_TOMBSTONES, most=most)
        assert row is not None  # a SELECT without FROM returns its one row
        return forgotten + int(row["forgotten"])
