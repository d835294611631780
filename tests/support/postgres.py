"""A real PostgreSQL: the server the suite runs on, fresh migrated databases, and a row held locked."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn


@dataclass(frozen=True)
class Database:
    """A migrated database on a real PostgreSQL server."""

    url: str
    admin_url: str

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return asyncio.run(self.fetch(sql, *args))

    def script(self, sql: str) -> None:
        """Run several `;`-separated statements, with no parameters."""

        async def run() -> None:
            conn = await asyncpg.connect(asyncpg_dsn(self.url))
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())


@asynccontextmanager
async def row_locked(url: str, user_id: str, task_id: str) -> AsyncIterator[None]:
    """Hold a write lock on one task from a connection of the test's own, as a slow writer would."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT 1 FROM tasks WHERE user_id = $1 AND id = $2 FOR UPDATE", user_id, uuid.UUID(task_id)
            )
            yield
    finally:
        await conn.close()


def _with_database(url: str, name: str) -> str:
    """The same server URL, naming another database (pgserver URLs carry the socket in the query)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def create_database(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(admin_url, name)


@contextmanager
def postgres_server(base: Path) -> Iterator[str]:
    """A PostgreSQL server: TEST_DATABASE_URL's if set, else an embedded pgserver in `base`."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    import pgserver

    server = pgserver.get_server(base, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def fresh_database(admin_url: str, name: str) -> Database:
    url = asyncio.run(create_database(admin_url, name))
    asyncio.run(migrate(asyncpg_dsn(url)))
    return Database(url=url, admin_url=admin_url)
