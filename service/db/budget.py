"""The connection budget: every worker's pool and listener, plus a release's migration, must fit in
what the database lets this service open.

Heroku sets WEB_CONCURRENCY itself (2 to 17 workers by dyno size) and roles on small plans allow
20 connections: pools sized for one worker then take every connection, the event stream's
listener answers 503, and the next release's `migrate` fails with "too many connections". The
limit is DB_MAX_CONNECTIONS when the operator states it, else what the server reports (its
max_connections less the superuser reserve, the role's and the database's own limits).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# One connection is kept free for a release's `migrate` (or an operator's psql).
SPARE = 1
_LIMITS = """
SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int
           AS server,
       (SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user) AS role,
       (SELECT datconnlimit FROM pg_database WHERE datname = current_database()) AS database
"""


@dataclass(frozen=True, slots=True)
class Budget:
    """How many connections this service may open, and where that number comes from."""

    limit: int
    source: str

    def per_worker(self, workers: int, listener: int = 1) -> int:
        """The largest pool each of `workers` may hold beside its listener, leaving SPARE free."""
        return (self.limit - SPARE) // workers - listener


async def read_budget(conn: asyncpg.Connection, stated: int | None) -> Budget:
    """The budget: `stated` (DB_MAX_CONNECTIONS) if given, else the tightest limit the server reports."""
    if stated is not None:
        return Budget(stated, "DB_MAX_CONNECTIONS")
    row = await conn.fetchrow(_LIMITS)
    assert row is not None
    limits = [(row["server"], "the server's max_connections")]
    for name, label in (
        ("role", "the role's connection limit"),
        ("database", "the database's connection limit"),
    ):
        if row[name] is not None and row[name] >= 0:
            limits.append((row[name], label))
    limit, source = min(limits)
    return Budget(limit, source)


def fit(budget: Budget, workers: int, pool: int) -> tuple[int, str | None]:
    """The pool size each worker may use, and the line to print when it had to shrink.

    Raises ValueError when not even a pool of one connection per worker fits.
    """
    room = budget.per_worker(workers)
    if room < 1:
        raise ValueError(
            f"{workers} worker(s) need at least {workers * 2 + SPARE} connections (a pool of 1 and a "
            f"listener each, and {SPARE} for migrations), but {budget.source} allows {budget.limit}: "
            "lower WEB_CONCURRENCY or raise the limit"
        )
    if pool <= room:
        return pool, None
    return room, (
        f"connection budget: {budget.source} allows {budget.limit}; {workers} worker(s) x (DB_POOL_SIZE "
        f"{pool} + 1 listener) + {SPARE} spare would need {workers * (pool + 1) + SPARE}: each worker's "
        f"pool is {room}"
    )
