"""sql/008 applied to a database that holds v2 data (CONTRACT v3 §11, "Upgrade"): existing tasks
land in the Inbox at the top level, in the manual order they had; nothing else changes for them,
ETags and change numbers included."""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from service.auth.signing import b64encode
from service.db.migrations import SQL_DIR, migrate
from service.db.pool import asyncpg_dsn
from service.sync.tokens import SyncTokens
from service.tasks.ids import uuid7
from service.tasks.order.positions import int_key
from tests.support.postgres import Database, create_database
from tests.support.servers import LiveServer
from tests.support.tokens import SECRET, auth

V2 = tuple(sorted(p.name for p in SQL_DIR.glob("*.sql") if p.name < "008"))
USERS = ("ann", "ben")
# The columns a v2 task had; sql/008 adds list_id, parent_id and ancestry.
V2_COLUMNS = (
    "user_id",
    "id",
    "title",
    "description",
    "completed",
    "version",
    "created_at",
    "updated_at",
    "due_at",
    "priority",
    "tags",
    "tag_keys",
    "completed_at",
    "position",
    "change_seq",
)
# TaskRead's fields, in order: what GET gives for a task.
READ_FIELDS = (
    "id",
    "title",
    "description",
    "completed",
    "user_id",
    "created_at",
    "updated_at",
    "due_at",
    "priority",
    "tags",
    "completed_at",
    "position",
    "list_id",
    "parent_id",
)
_TIMES = ("created_at", "updated_at", "due_at", "completed_at")


def _v2_etag(task_id: uuid.UUID, version: int) -> str:
    """The ETag v2 gave a task: its version and a fingerprint of its id (service/web/conditional.py)."""
    digest = hashlib.blake2b(task_id.bytes, digest_size=6).digest()
    return f'"{version}-{b64encode(digest)}"'


def _v1_token(user: str, change_seq: int, at: datetime) -> str:
    """A sync token as the v2 service wrote it (layout version 1, no phase). It signs with the
    private SyncTokens._mac on purpose: the service no longer writes this layout itself."""
    payload = struct.pack(
        ">BQq", 1, change_seq, (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    )
    return b64encode(payload + SyncTokens(SECRET.encode())._mac(user, payload))  # private on purpose


@dataclass(frozen=True)
class Upgraded:
    db: Database
    # Every v2 row and tombstone, and each user's row, as they were before sql/008.
    rows_before: list[asyncpg.Record]
    tombstones_before: list[asyncpg.Record]
    users_before: dict[str, asyncpg.Record]
    # Each user's task ids in their manual order (position, as bytes).
    order: dict[str, list[uuid.UUID]]
    read_at: datetime


async def _seed(dsn: str) -> None:
    """Two users' v2 tasks: open and completed, tagged, due, with priorities and descriptions, in a
    manual order unlike their creation order, edited (versions > 1), and some deleted (tombstones)."""
    rng = random.Random(8)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO users (id) VALUES ('ann'), ('ben'), ('nobody')")
        start = datetime(2026, 1, 5, tzinfo=UTC)
        for user, count in (("ann", 14), ("ben", 6)):
            parts = list(range(-3, count - 3))
            rng.shuffle(parts)
            keys = [int_key(n) for n in parts]
            keys[1] = int_key(parts[0]) + "V"  # a key between two integer parts, as a move makes
            for n in range(count):
                created = start + timedelta(hours=n)
                completed = n % 3 == 0
                tags = [["Work", "Urgent"], ["home"], []][n % 3]
                await conn.execute(
                    """INSERT INTO tasks (user_id, id, title, description, completed, version, created_at,
                                          updated_at, due_at, priority, tags, tag_keys, completed_at, position)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
                    user,
                    uuid7(created),
                    f"{user} task {n}",
                    f"about {n}" if n % 2 else None,
                    completed,
                    1 + n % 4,
                    created,
                    created + timedelta(minutes=n),
                    created + timedelta(days=3) if n % 4 == 1 else None,
                    ("none", "low", "medium", "high")[n % 4],
                    tags,
                    [t.casefold() for t in tags],
                    created + timedelta(minutes=n) if completed else None,
                    keys[n],
                )
            await conn.execute(
                "UPDATE users SET task_count = $2, position_head = -3 WHERE id = $1", user, count
            )
            # A later edit, numbered after the inserts: change numbers unlike creation order.
            await conn.execute(
                """UPDATE tasks SET title = title || ' (edited)', version = version + 1,
                                    updated_at = updated_at + interval '1 day'
                   WHERE user_id = $1 AND title = $2""",
                user,
                f"{user} task 2",
            )
            # Two deletions leave tombstones (one a completed task): the v2 DELETE and clear-completed.
            gone = await conn.execute(
                "DELETE FROM tasks WHERE user_id = $1 AND title IN ($2, $3)",
                user,
                f"{user} task 4",
                f"{user} task 3",
            )
            assert gone == "DELETE 2"
            await conn.execute("UPDATE users SET task_count = task_count - 2 WHERE id = $1", user)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def upgraded(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Upgraded:
    folder = tmp_path_factory.mktemp("v2sql")
    for name in V2:
        shutil.copy(SQL_DIR / name, folder / name)
    url = asyncio.run(create_database(pg_admin_url, "upgrade_v3"))
    dsn = asyncpg_dsn(url)
    assert asyncio.run(migrate(dsn, folder)) == list(V2)
    asyncio.run(_seed(dsn))
    db = Database(url=url, admin_url=pg_admin_url)
    rows = db.query("SELECT * FROM tasks ORDER BY user_id, id")
    tombstones = db.query("SELECT * FROM task_tombstones ORDER BY user_id, change_seq")
    users = {r["id"]: r for r in db.query("SELECT * FROM users")}
    order = {
        u: [
            r["id"]
            for r in db.query('SELECT id FROM tasks WHERE user_id = $1 ORDER BY position COLLATE "C"', u)
        ]
        for u in USERS
    }
    read_at = db.query("SELECT now() AS now")[0]["now"]
    applied = asyncio.run(migrate(dsn))
    assert applied == sorted(p.name for p in SQL_DIR.glob("*.sql") if p.name not in V2)
    assert "008_lists_and_subtasks.sql" in applied
    return Upgraded(db, rows, tombstones, users, order, read_at)


def _expected_view(row: asyncpg.Record) -> dict[str, Any]:
    """What GET should give for a v2 row: its v2 fields, then list_id and parent_id null."""
    view = {name: row[name] for name in READ_FIELDS if name not in ("list_id", "parent_id")}
    view["id"] = str(row["id"])
    return {**view, "list_id": None, "parent_id": None}


def _as_read(body: dict[str, Any]) -> dict[str, Any]:
    """An API task with its times parsed, to compare with the database's."""
    return {k: (datetime.fromisoformat(v) if k in _TIMES and v is not None else v) for k, v in body.items()}


def _listing(client: httpx.Client, user: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 200, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"/api/{user}/tasks", params=query, headers=auth(user))
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["data"]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return found


def test_every_task_is_in_the_inbox_at_the_top_level_and_otherwise_unchanged(upgraded: Upgraded) -> None:
    after = upgraded.db.query("SELECT * FROM tasks ORDER BY user_id, id")
    assert len(after) == len(upgraded.rows_before) == 14 + 6 - 4
    for old, new in zip(upgraded.rows_before, after, strict=True):
        assert {k: new[k] for k in V2_COLUMNS} == {k: old[k] for k in V2_COLUMNS}
        assert (new["list_id"], new["parent_id"], new["ancestry"]) == (None, None, None)
    # No trigger fired: no change numbers taken, no tombstones made, no counters moved.
    tombstones = upgraded.db.query("SELECT * FROM task_tombstones ORDER BY user_id, change_seq")
    assert len(tombstones) == len(upgraded.tombstones_before) == 4
    for old_stone, new_stone in zip(upgraded.tombstones_before, tombstones, strict=True):
        assert {k: new_stone[k] for k in old_stone.keys()} == dict(old_stone)  # noqa: SIM118 - as below
    assert all(r["is_list"] is False for r in upgraded.db.query("SELECT is_list FROM task_tombstones"))
    for user in (*USERS, "nobody"):
        now = upgraded.db.query("SELECT * FROM users WHERE id = $1", user)[0]
        before = upgraded.users_before[user]
        assert {k: now[k] for k in before.keys()} == dict(before)  # noqa: SIM118 - a Record iterates values
    assert upgraded.db.query("SELECT count(*) AS n FROM lists")[0]["n"] == 0


def test_the_tree_index_is_built_and_serves_a_lists_tree_order(upgraded: Upgraded) -> None:
    index = upgraded.db.query("SELECT indexdef FROM pg_indexes WHERE indexname = 'tasks_user_tree_key'")
    assert len(index) == 1
    assert "UNIQUE" in index[0]["indexdef"]
    assert "NULLS NOT DISTINCT" in index[0]["indexdef"]
    # sql/008 dropped the v2 per-user position uniqueness: siblings are unique now, via the tree key.
    assert not upgraded.db.query("SELECT 1 FROM pg_constraint WHERE conname = 'tasks_user_position_key'")

    async def plan() -> str:
        conn = await asyncpg.connect(asyncpg_dsn(upgraded.db.url))
        try:
            async with conn.transaction():
                # A handful of rows: make the planner show which index can give the order at all.
                await conn.execute("SET LOCAL enable_seqscan = off")
                await conn.execute("SET LOCAL enable_sort = off")
                # As service/tasks/tree/keys.py orders: the list first (IS NULL is no equality
                # to the planner), then the indexed key.
                plans = [
                    await conn.fetch(
                        f"""EXPLAIN SELECT id FROM tasks WHERE user_id = 'ann' AND {where}
                            ORDER BY list_id, coalesce(ancestry, '') || position LIMIT 50"""  # noqa: S608 - constant SQL
                    )
                    for where in ("list_id IS NULL", f"list_id = '{uuid.uuid4()}'")
                ]
            return "\n".join(r[0] for rows in plans for r in rows)
        finally:
            await conn.close()

    text = asyncio.run(plan())
    assert "tasks_user_tree_key" in text, text
    assert "Sort" not in text, text


def test_the_service_serves_each_task_as_v2_did_with_the_same_etag(
    upgraded: Upgraded, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server(database_url=upgraded.db.url)
    with server.client() as client:
        for row in upgraded.rows_before:
            user = row["user_id"]
            response = client.get(f"/api/{user}/tasks/{row['id']}", headers=auth(user))
            assert response.status_code == 200, response.text
            body = response.json()["data"]
            assert list(body) == list(READ_FIELDS)
            assert _as_read(body) == _expected_view(row)
            assert response.headers["etag"] == _v2_etag(row["id"], row["version"])
            # A v2 client's cached copy is still current.
            cached = client.get(
                f"/api/{user}/tasks/{row['id']}",
                headers={**auth(user), "If-None-Match": _v2_etag(row["id"], row["version"])},
            )
            assert cached.status_code == 304
        for user in USERS:
            ordered = _listing(client, user, sort="position")
            assert [t["id"] for t in ordered] == [str(i) for i in upgraded.order[user]]
            inbox = _listing(client, user, sort="position", list_id="inbox")
            assert [t["id"] for t in inbox] == [str(i) for i in upgraded.order[user]]
            assert all((t["list_id"], t["parent_id"]) == (None, None) for t in ordered)
    # Reading wrote nothing.
    now = upgraded.db.query("SELECT user_id, id, change_seq, version FROM tasks ORDER BY user_id, id")
    assert [tuple(r) for r in now] == [
        (r["user_id"], r["id"], r["change_seq"], r["version"]) for r in upgraded.rows_before
    ]


def test_stats_show_only_the_inbox_with_the_right_counts(
    upgraded: Upgraded, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server(database_url=upgraded.db.url)
    with server.client() as client:
        for user in (*USERS, "nobody"):
            rows = [r for r in upgraded.rows_before if r["user_id"] == user]
            done = sum(r["completed"] for r in rows)
            response = client.get(f"/api/{user}/tasks/stats", headers=auth(user))
            assert response.status_code == 200, response.text
            stats = response.json()["data"]
            assert (stats["total"], stats["completed"], stats["active"]) == (
                len(rows),
                done,
                len(rows) - done,
            )
            assert stats["lists"] == [{"list_id": None, "active": len(rows) - done, "completed": done}]
            # v2 tag counters carried over: active tasks' tags.
            tagged: dict[str, int] = {}
            for r in rows:
                if not r["completed"]:
                    for tag in r["tags"]:
                        tagged[tag] = tagged.get(tag, 0) + 1
            assert {t["name"]: t["count"] for t in stats["tags"]} == tagged
            # The Inbox's own stats are the user's: every task is in it.
            inbox = client.get(f"/api/{user}/tasks/stats", params={"list_id": "inbox"}, headers=auth(user))
            assert inbox.status_code == 200, inbox.text
            assert inbox.json()["data"] == stats


def test_a_client_synced_before_the_upgrade_sees_no_change(
    upgraded: Upgraded, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server(database_url=upgraded.db.url)
    with server.client() as client:
        for user in USERS:
            head = upgraded.users_before[user]["change_seq"]
            token = _v1_token(user, head, upgraded.read_at)
            response = client.get(f"/api/{user}/tasks/changes", params={"since": token}, headers=auth(user))
            assert response.status_code == 200, response.text
            assert response.json()["data"] == []
            assert response.json()["meta"]["has_more"] is False
            # A full sync: no lists, every task as GET gives it.
            full = client.get(f"/api/{user}/tasks/changes", headers=auth(user)).json()
            assert {c["op"] for c in full["data"]} == {"upsert"}
            assert {c["task"]["id"]: c["task"] for c in full["data"]} == {
                t["id"]: t for t in _listing(client, user)
            }


def test_lists_and_subtasks_work_on_the_upgraded_data(
    upgraded: Upgraded, make_server: Callable[..., LiveServer]
) -> None:
    """Last in the module: it writes."""
    server = make_server(database_url=upgraded.db.url)
    user = "ann"
    headers = auth(user)
    old = [str(i) for i in upgraded.order[user]]
    before_seq = upgraded.users_before[user]["change_seq"]
    with server.client() as client:
        made = client.post(f"/api/{user}/lists", json={"name": "Projects"}, headers=headers)
        assert made.status_code == 201, made.text
        found = made.json()["data"]
        parent = client.post(
            f"/api/{user}/tasks", json={"title": "plan", "list_id": found["id"]}, headers=headers
        )
        assert parent.status_code == 201, parent.text
        child = client.post(
            f"/api/{user}/tasks",
            json={"title": "step", "parent_id": parent.json()["data"]["id"]},
            headers=headers,
        )
        assert child.status_code == 201, child.text
        assert (child.json()["data"]["list_id"], child.json()["data"]["parent_id"]) == (
            found["id"],
            parent.json()["data"]["id"],
        )
        # A subtask under an upgraded task, in the Inbox: the tree order puts it right after its parent.
        under_old = client.post(
            f"/api/{user}/tasks", json={"title": "under old", "parent_id": old[2]}, headers=headers
        )
        assert under_old.status_code == 201, under_old.text
        assert (under_old.json()["data"]["list_id"], under_old.json()["data"]["parent_id"]) == (None, old[2])
        inbox = [t["id"] for t in _listing(client, user, sort="position", list_id="inbox")]
        assert inbox == [*old[:3], under_old.json()["data"]["id"], *old[3:]]
        listed = [t["id"] for t in _listing(client, user, sort="position", list_id=found["id"])]
        assert listed == [parent.json()["data"]["id"], child.json()["data"]["id"]]
        # An upgraded task moves into the list: a new version, so a new ETag.
        moved_row = next(r for r in upgraded.rows_before if str(r["id"]) == old[0])
        moved = client.post(
            f"/api/{user}/tasks/{old[0]}/move", json={"list_id": found["id"]}, headers=headers
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["data"]["list_id"] == found["id"]
        assert moved.headers["etag"] != _v2_etag(moved_row["id"], moved_row["version"])
        stats = client.get(f"/api/{user}/tasks/stats", headers=headers).json()["data"]
        rows = [r for r in upgraded.rows_before if r["user_id"] == user]
        done = sum(r["completed"] for r in rows)
        moved_done = int(moved_row["completed"])
        assert stats["lists"] == [
            {
                "list_id": None,
                "active": len(rows) + 1 - done - (1 - moved_done),
                "completed": done - moved_done,
            },
            {"list_id": found["id"], "active": 3 - moved_done, "completed": moved_done},
        ]
        # A v2 client's sync picks up exactly these writes: the list before the tasks in it.
        token = _v1_token(user, before_seq, upgraded.read_at)
        page = client.get(f"/api/{user}/tasks/changes", params={"since": token}, headers=headers).json()
        assert page["data"][0] == {"op": "list_upsert", "list": found}
        assert {c["task"]["id"] for c in page["data"][1:]} == {
            parent.json()["data"]["id"],
            child.json()["data"]["id"],
            under_old.json()["data"]["id"],
            old[0],
        }
        # The other user's v2 tasks are untouched.
        other = upgraded.db.query("SELECT change_seq FROM users WHERE id = 'ben'")[0]["change_seq"]
        assert other == upgraded.users_before["ben"]["change_seq"]
