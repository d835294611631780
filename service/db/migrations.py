"""Applies the ordered plain-SQL files of `sql/`, once each, under an advisory lock."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import asyncpg

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
# Any fixed number: every release of this service takes the same lock, so two never migrate at once.
LOCK_ID = 0x70D0_5E1F
CONNECT_TIMEOUT = 10.0

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text        PRIMARY KEY,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The database and the files in `sql/` disagree; nothing more was applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load(directory: Path = SQL_DIR) -> list[Migration]:
    if not directory.is_dir():
        raise MigrationError(f"migrations folder {directory} does not exist")
    return [Migration(p.name, p.read_text("utf-8")) for p in sorted(directory.glob("*.sql"))]


async def migrate(
    dsn: str, directory: Path = SQL_DIR, *, connect_timeout: float = CONNECT_TIMEOUT
) -> list[str]:
    """Apply every new migration, each in its own transaction; return the names applied."""
    migrations = load(directory)
    conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_ID)
        try:
            await conn.execute(_BOOKKEEPING)
            rows = await conn.fetch("SELECT name, checksum FROM schema_migrations")
            applied: dict[str, str] = {row["name"]: row["checksum"] for row in rows}
            known = {m.name for m in migrations}
            if missing := sorted(set(applied) - known):
                raise MigrationError(f"applied migrations are missing from {directory}: {', '.join(missing)}")
            done: list[str] = []
            for migration in migrations:
                if migration.name in applied:
                    if applied[migration.name] != migration.checksum:
                        raise MigrationError(f"{migration.name} was edited after it was applied")
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                        migration.name,
                        migration.checksum,
                    )
                done.append(migration.name)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_ID)
    finally:
        await conn.close()
