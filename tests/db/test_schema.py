"""The migrations: what they create matches the SQLModel models; they run once, in order, safely."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from service.db.migrations import SQL_DIR, MigrationError, migrate
from service.db.pool import asyncpg_dsn
from service.tasks.models import IdempotencyKey, Task, TaskTagCount, TaskTombstone, User
from tests.support.postgres import Database, create_database

PG_TYPES = {
    "TEXT": "text",
    "UUID": "uuid",
    "BOOLEAN": "boolean",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "TEXT[]": "ARRAY",
    "task_priority": "USER-DEFINED",
    "SMALLINT": "smallint",
    "BYTEA": "bytea",
    "TIMESTAMP WITH TIME ZONE": "timestamp with time zone",
}


@pytest.mark.parametrize(
    "model", [User, Task, TaskTombstone, TaskTagCount, IdempotencyKey], ids=lambda m: m.__name__
)
def test_models_match_the_migrated_schema(database: Database, model: type) -> None:
    from sqlalchemy.dialects import postgresql

    table = model.__table__  # type: ignore[attr-defined]
    rows = database.query(
        """SELECT column_name, data_type, is_nullable, collation_name
           FROM information_schema.columns WHERE table_name = $1""",
        table.name,
    )
    actual = {
        r["column_name"]: (r["data_type"], r["is_nullable"] == "YES", r["collation_name"]) for r in rows
    }
    expected = {
        c.name: (
            PG_TYPES[c.type.compile(dialect=postgresql.dialect()).split(" COLLATE ")[0]],
            bool(c.nullable),
            getattr(c.type, "collation", None),
        )
        for c in table.columns
    }
    assert actual == expected
    pk = database.query(
        """SELECT a.attname FROM pg_index i
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
           WHERE i.indrelid = $1::regclass AND i.indisprimary""",
        table.name,
    )
    assert {r["attname"] for r in pk} == {c.name for c in table.primary_key.columns}


def test_tasks_reference_users_with_cascade_and_their_lists(database: Database) -> None:
    rows = database.query(
        """SELECT confdeltype::text AS confdeltype, confrelid::regclass::text AS target FROM pg_constraint
           WHERE conrelid = 'tasks'::regclass AND contype = 'f' ORDER BY 2"""
    )
    # A list's tasks are deleted by the statement before the list's (service/lists/store.py), one
    # tombstone each: a cascade would delete them without the feed's numbering order.
    assert [(r["target"], r["confdeltype"]) for r in rows] == [("lists", "a"), ("users", "c")]


def test_default_listing_index_exists(database: Database) -> None:
    rows = database.query("SELECT indexdef FROM pg_indexes WHERE tablename = 'tasks'")
    assert any("(user_id, created_at DESC, id DESC)" in r["indexdef"] for r in rows)


def _copy_sql(tmp_path: Path) -> Path:
    target = tmp_path / "sql"
    shutil.copytree(SQL_DIR, target)
    return target


def test_migrate_is_recorded_and_idempotent(pg_admin_url: str, tmp_path: Path) -> None:
    url = asyncpg_dsn(asyncio.run(create_database(pg_admin_url, "migrate_twice")))
    first = asyncio.run(migrate(url))
    assert first == sorted(p.name for p in SQL_DIR.glob("*.sql"))
    assert asyncio.run(migrate(url)) == []


def test_new_files_are_applied_in_order(pg_admin_url: str, tmp_path: Path) -> None:
    folder = _copy_sql(tmp_path)
    url = asyncpg_dsn(asyncio.run(create_database(pg_admin_url, "migrate_new")))
    asyncio.run(migrate(url, folder))
    (folder / "900_extra.sql").write_text("CREATE TABLE extra (id int);")
    assert asyncio.run(migrate(url, folder)) == ["900_extra.sql"]


def test_edited_applied_migration_is_refused(pg_admin_url: str, tmp_path: Path) -> None:
    folder = _copy_sql(tmp_path)
    url = asyncpg_dsn(asyncio.run(create_database(pg_admin_url, "migrate_edited")))
    asyncio.run(migrate(url, folder))
    first = sorted(folder.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    (folder / "900_extra.sql").write_text("CREATE TABLE extra (id int);")
    with pytest.raises(MigrationError, match="edited"):
        asyncio.run(migrate(url, folder))
    # Nothing after the refusal ran.
    db = Database(url=url, admin_url=pg_admin_url)
    assert db.query("SELECT to_regclass('extra') AS t")[0]["t"] is None


def test_failing_migration_rolls_back_whole_file(pg_admin_url: str, tmp_path: Path) -> None:
    folder = _copy_sql(tmp_path)
    (folder / "900_broken.sql").write_text("CREATE TABLE half (id int);\nSELECT no_such_function();")
    url = asyncpg_dsn(asyncio.run(create_database(pg_admin_url, "migrate_broken")))
    with pytest.raises(Exception, match="no_such_function"):
        asyncio.run(migrate(url, folder))
    db = Database(url=url, admin_url=pg_admin_url)
    assert db.query("SELECT to_regclass('half') AS t")[0]["t"] is None
    assert "900_broken.sql" not in {r["name"] for r in db.query("SELECT name FROM schema_migrations")}
    assert db.query("SELECT to_regclass('tasks') AS t")[0]["t"] == "tasks"


def test_concurrent_releases_do_not_race(pg_admin_url: str) -> None:
    url = asyncpg_dsn(asyncio.run(create_database(pg_admin_url, "migrate_race")))

    async def both() -> list[list[str]]:
        return list(await asyncio.gather(*(migrate(url) for _ in range(4))))

    results = asyncio.run(both())
    applied = [r for r in results if r]
    # Exactly one release applied everything; the others waited on the lock and found nothing to do.
    assert len(applied) == 1
    assert applied[0] == sorted(p.name for p in SQL_DIR.glob("*.sql"))
