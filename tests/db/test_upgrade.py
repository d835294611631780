"""sql/003 applied to a database that holds v1 data: every task survives, in the order it was listed."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import pytest

from service.db.migrations import SQL_DIR, migrate
from service.db.pool import asyncpg_dsn
from service.tasks.order import positions
from tests.support.postgres import Database, create_database
from tests.support.servers import LiveServer
from tests.support.tokens import auth

V1 = ("001_users_and_tasks.sql", "002_listing_and_idempotency.sql")


@dataclass(frozen=True)
class Upgraded:
    db: Database
    # Each user's task ids in their v1 listing order, and every row as it was before the upgrade.
    order: dict[str, list[uuid.UUID]]
    rows_before: list[asyncpg.Record]


@pytest.fixture(scope="module")
def upgraded(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Upgraded:
    """A v1 database with three users' tasks (equal created_at included), then every later migration."""
    folder = tmp_path_factory.mktemp("v1sql")
    for name in V1:
        shutil.copy(SQL_DIR / name, folder / name)
    url = asyncio.run(create_database(pg_admin_url, "upgrade_v1"))
    asyncio.run(migrate(asyncpg_dsn(url), folder))
    db = Database(url=url, admin_url=pg_admin_url)
    db.query("INSERT INTO users (id) VALUES ('alice'), ('bob'), ('carol'), ('nobody')")
    db.query(
        """INSERT INTO tasks (user_id, id, title, description, completed, version, created_at, updated_at)
           SELECT u, gen_random_uuid(), u || ' task ' || g, CASE WHEN g % 2 = 0 THEN 'd' END, g % 3 = 0, 1 + g % 4,
                  timestamptz '2026-01-01' + (g / 2) * interval '1 hour',
                  timestamptz '2026-01-01' + (g / 2) * interval '1 hour' + interval '5 minutes'
           FROM unnest(ARRAY['alice', 'bob', 'carol']) AS u, generate_series(1, 30) AS g
           WHERE u <> 'carol' OR g <= 3"""
    )
    order = {
        r["user_id"]: r["ids"]
        for r in db.query(
            """SELECT user_id, array_agg(id ORDER BY created_at DESC, id DESC) AS ids FROM tasks GROUP BY user_id"""
        )
    }
    rows = db.query("SELECT * FROM tasks ORDER BY user_id, id")
    applied = asyncio.run(migrate(asyncpg_dsn(url)))
    assert applied == sorted(p.name for p in SQL_DIR.glob("*.sql") if p.name not in V1)
    return Upgraded(db, order, rows)


def test_every_task_survives_unchanged(upgraded: Upgraded) -> None:
    after = upgraded.db.query("SELECT * FROM tasks ORDER BY user_id, id")
    before = upgraded.rows_before
    assert len(after) == len(before) == 63
    for old, new in zip(before, after, strict=True):
        assert {k: new[k] for k in old.keys()} == dict(old)  # noqa: SIM118 - a Record iterates values


def test_positions_keep_the_v1_order_newest_first(upgraded: Upgraded) -> None:
    for user, ids in upgraded.order.items():
        rows = upgraded.db.query("SELECT id, position FROM tasks WHERE user_id = $1 ORDER BY position", user)
        assert [r["id"] for r in rows] == list(ids)
        assert [r["position"] for r in rows] == [positions.int_key(i) for i in range(len(ids))]


def test_new_fields_are_backfilled(upgraded: Upgraded) -> None:
    rows = upgraded.db.query("SELECT * FROM tasks")
    for row in rows:
        assert (row["due_at"], row["priority"], row["tags"], row["tag_keys"]) == (None, "none", [], [])
        assert row["completed_at"] == (row["updated_at"] if row["completed"] else None)
    counts = {
        r["id"]: (r["task_count"], r["position_head"]) for r in upgraded.db.query("SELECT * FROM users")
    }
    assert counts == {"alice": (30, 0), "bob": (30, 0), "carol": (3, 0), "nobody": (0, 0)}


def test_the_service_serves_upgraded_data(upgraded: Upgraded, make_server: Callable[..., LiveServer]) -> None:
    server = make_server(database_url=upgraded.db.url)
    with server.client() as client:
        listed = client.get(
            "/api/alice/tasks", params={"sort": "position", "limit": 200}, headers=auth("alice")
        )
        assert listed.status_code == 200, listed.text
        ids = [t["id"] for t in listed.json()["data"]]
        assert ids == [str(i) for i in upgraded.order["alice"]]
        default = client.get("/api/alice/tasks", params={"limit": 200}, headers=auth("alice")).json()["data"]
        assert [t["id"] for t in default] == ids
        # A new task goes first, before every upgraded one.
        new = client.post("/api/alice/tasks", json={"title": "after the upgrade"}, headers=auth("alice"))
        assert new.status_code == 201
        first = client.get("/api/alice/tasks", params={"sort": "position", "limit": 1}, headers=auth("alice"))
        assert first.json()["data"][0]["id"] == new.json()["data"]["id"]
        stats = client.get("/api/carol/tasks/stats", headers=auth("carol")).json()["data"]
        assert (stats["total"], stats["completed"]) == (3, 1)


def test_the_new_columns_did_not_rewrite_the_table(upgraded: Upgraded) -> None:
    """Constant defaults are stored once in the catalogue ("missing" values); a rewrite would drop them."""
    rows = upgraded.db.query(
        """SELECT attname, atthasmissing FROM pg_attribute
           WHERE attrelid = 'tasks'::regclass AND attname IN ('priority', 'tags', 'tag_keys')"""
    )
    assert {r["attname"]: r["atthasmissing"] for r in rows} == {
        "priority": True,
        "tags": True,
        "tag_keys": True,
    }
