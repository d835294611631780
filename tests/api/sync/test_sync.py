"""CONTRACT §9, changes feed: full and incremental sync, tombstones, tokens, and convergence under load."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from service.db.migrations import SQL_DIR, migrate
from service.db.pool import asyncpg_dsn
from service.sync.tokens import Position, SyncTokens
from service.tasks.ids import uuid7
from service.tasks.order.positions import int_key, sql_int_key
from tests.support.postgres import Database, create_database
from tests.support.servers import LiveServer
from tests.support.tokens import SECRET, auth, new_user


def _changes(client: httpx.Client, user: str, **params: Any) -> httpx.Response:
    return client.get(f"/api/{user}/tasks/changes", params=params, headers=auth(user))


def _create(client: httpx.Client, user: str, title: str) -> dict[str, Any]:
    response = client.post(f"/api/{user}/tasks", json={"title": title}, headers=auth(user))
    assert response.status_code == 201
    return response.json()["data"]


def _apply(local: dict[str, Any], page: dict[str, Any]) -> None:
    """Apply one page of changes to a client's copy of its tasks, as a client would."""
    for change in page["data"]:
        if change["op"] == "upsert":
            local[change["task"]["id"]] = change["task"]
        else:
            local.pop(change["id"], None)


def _sync(client: httpx.Client, user: str, local: dict[str, Any], since: str | None, limit: int = 200) -> str:
    """Apply pages until has_more is false, as a client would; return the token to continue from."""
    while True:
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since
        response = _changes(client, user, **params)
        assert response.status_code == 200, response.text
        body = response.json()
        ids = [c["task"]["id"] if c["op"] == "upsert" else c["id"] for c in body["data"]]
        assert len(ids) == len(set(ids)), "a task appears twice in one response"
        assert body["meta"]["count"] == len(body["data"])
        _apply(local, body)
        since = body["meta"]["next_since"]
        if not body["meta"]["has_more"]:
            return since


def _server_tasks(client: httpx.Client, user: str) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"/api/{user}/tasks", params=params, headers=auth(user)).json()
        tasks.update({t["id"]: t for t in body["data"]})
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return tasks


def test_full_sync_pages_every_task_once_then_nothing(client: httpx.Client, user: str) -> None:
    made = {_create(client, user, f"task {i}")["id"] for i in range(7)}
    first = _changes(client, user, limit=3).json()
    assert first["meta"]["has_more"] is True
    assert first["meta"]["limit"] == 3
    assert [c["op"] for c in first["data"]] == ["upsert"] * 3
    local: dict[str, Any] = {}
    token = _sync(client, user, local, None, limit=3)
    assert set(local) == made
    assert local == _server_tasks(client, user)
    again = _changes(client, user, since=token).json()
    assert again["data"] == []
    assert again["meta"]["has_more"] is False


def test_new_user_full_sync_is_empty_and_continues(client: httpx.Client, user: str) -> None:
    body = _changes(client, user).json()
    assert body["data"] == []
    assert body["meta"] == {**body["meta"], "count": 0, "limit": 200, "has_more": False}
    task = _create(client, user, "first")
    later = _changes(client, user, since=body["meta"]["next_since"]).json()
    assert later["data"] == [{"op": "upsert", "task": task}]


def test_incremental_sync_reports_each_task_once_in_its_latest_state(client: httpx.Client, user: str) -> None:
    keep, gone, edited = (_create(client, user, t) for t in ("keep", "gone", "edited"))
    token = _changes(client, user).json()["meta"]["next_since"]
    for title in ("edited once", "edited twice"):
        client.patch(f"/api/{user}/tasks/{edited['id']}", json={"title": title}, headers=auth(user))
    deleted = client.delete(f"/api/{user}/tasks/{gone['id']}", headers=auth(user)).json()["data"]
    new = _create(client, user, "new")
    body = _changes(client, user, since=token).json()
    assert [c["op"] for c in body["data"]] == ["upsert", "delete", "upsert"]
    assert body["data"][0]["task"]["title"] == "edited twice"
    assert (
        body["data"][0]["task"]
        == client.get(f"/api/{user}/tasks/{edited['id']}", headers=auth(user)).json()["data"]
    )
    assert body["data"][1]["id"] == gone["id"]
    assert datetime.fromisoformat(body["data"][1]["deleted_at"]) >= datetime.fromisoformat(
        deleted["updated_at"]
    )
    assert body["data"][2]["task"] == new
    assert keep["id"] not in str(body["data"])


def test_clearing_completed_tasks_leaves_a_tombstone_for_each(
    client: httpx.Client, user: str, database: Database
) -> None:
    tasks = [_create(client, user, f"t{i}") for i in range(4)]
    for task in tasks[:3]:
        client.patch(f"/api/{user}/tasks/{task['id']}/complete", headers=auth(user))
    local: dict[str, Any] = {}
    token = _sync(client, user, local, None)
    # clear-completed is one DELETE of the user's completed rows, whichever route sends it.
    database.query("DELETE FROM tasks WHERE user_id = $1 AND completed", user)
    body = _changes(client, user, since=token).json()
    assert sorted(c["id"] for c in body["data"]) == sorted(t["id"] for t in tasks[:3])
    assert {c["op"] for c in body["data"]} == {"delete"}
    _sync(client, user, local, token)
    assert set(local) == {tasks[3]["id"]}


def test_another_users_token_or_a_tampered_one_is_422(client: httpx.Client, user: str) -> None:
    _create(client, user, "mine")
    token = _changes(client, user).json()["meta"]["next_since"]
    intruder = new_user()
    stolen = _changes(client, intruder, since=token)
    assert stolen.status_code == 422
    assert stolen.json()["error"]["details"][0]["field"] == "since"
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (flipped, token + "A", "not-a-token", "é"):
        response = _changes(client, user, since=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "limit=x", "limit=", "since=", "limit=5&limit=6"], ids=str
)
def test_bad_parameters_are_422(client: httpx.Client, user: str, query: str) -> None:
    response = client.get(f"/api/{user}/tasks/changes?{query}", headers=auth(user))
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] in query


def test_route_is_matched_before_the_task_id_and_guards_the_path(client: httpx.Client, user: str) -> None:
    assert _changes(client, user).status_code == 200
    foreign = client.get(f"/api/{new_user()}/tasks/changes", headers=auth(user))
    assert foreign.status_code == 403
    assert client.get(f"/api/{user}/tasks/changes").status_code == 401


def test_a_token_older_than_the_retention_is_410(client: httpx.Client, user: str) -> None:
    _create(client, user, "old")
    head = _changes(client, user).json()["meta"]["next_since"]
    seq = SyncTokens(SECRET.encode()).decode(user, head).seq
    month_ago = datetime.now(UTC) - timedelta(days=30, minutes=1)
    old = SyncTokens(SECRET.encode()).encode(user, Position(seq, month_ago))
    response = _changes(client, user, since=old)
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "SYNC_EXPIRED"
    fresh = SyncTokens(SECRET.encode()).encode(user, Position(seq, month_ago + timedelta(minutes=2)))
    assert _changes(client, user, since=fresh).status_code == 200


def test_a_token_ahead_of_the_database_is_410(client: httpx.Client, user: str) -> None:
    """A database restored from a backup forgot changes a client saw: it must start over."""
    _create(client, user, "one")
    ahead = SyncTokens(SECRET.encode()).encode(user, Position(99, datetime.now(UTC)))
    assert _changes(client, user, since=ahead).status_code == 410


def test_tombstones_are_purged_after_the_retention(
    make_server: Callable[..., LiveServer], database: Database
) -> None:
    live = make_server(sync_retention=2)
    user = new_user()
    with live.client() as client:
        task = _create(client, user, "short-lived")
        client.delete(f"/api/{user}/tasks/{task['id']}", headers=auth(user))
    assert database.query("SELECT id FROM task_tombstones WHERE user_id = $1", user)
    database.query(
        "UPDATE task_tombstones SET deleted_at = now() - interval '1 hour' WHERE user_id = $1", user
    )
    deadline = time.monotonic() + 30
    while database.query("SELECT id FROM task_tombstones WHERE user_id = $1", user):
        assert time.monotonic() < deadline, "the service did not purge the tombstone"
        time.sleep(0.2)


def test_existing_tasks_are_numbered_by_the_migration(pg_admin_url: str, tmp_path: Path) -> None:
    url = asyncio.run(create_database(pg_admin_url, "todo_sync_migration"))
    dsn = asyncpg_dsn(url)
    early = tmp_path / "sql"
    early.mkdir()
    for path in sorted(SQL_DIR.glob("*.sql")):
        if path.name < "004":
            shutil.copy(path, early)
    asyncio.run(migrate(dsn, early))
    db = Database(url=url, admin_url=pg_admin_url)
    db.query("INSERT INTO users (id) VALUES ('a'), ('b')")
    db.query(
        f"""INSERT INTO tasks (user_id, id, title, updated_at, position) VALUES
           ('a', gen_random_uuid(), 'a1', now() - interval '2 days', {sql_int_key("1")}),
           ('a', gen_random_uuid(), 'a2', now() - interval '1 day', {sql_int_key("2")}),
           ('b', gen_random_uuid(), 'b1', now(), {sql_int_key("1")})"""  # noqa: S608 - constant SQL
    )
    asyncio.run(migrate(dsn))
    rows = db.query("SELECT user_id, title, change_seq FROM tasks ORDER BY user_id, change_seq")
    assert [(r["user_id"], r["title"], r["change_seq"]) for r in rows] == [
        ("a", "a1", 1),
        ("a", "a2", 2),
        ("b", "b1", 1),
    ]
    heads = db.query("SELECT id, change_seq FROM users ORDER BY id")
    assert [(r["id"], r["change_seq"]) for r in heads] == [("a", 2), ("b", 1)]
    db.query("UPDATE tasks SET title = 'a1!', version = version + 1 WHERE title = 'a1'")
    assert db.query("SELECT change_seq FROM tasks WHERE title = 'a1!'")[0]["change_seq"] == 3
    # A write that leaves the version (the ETag) as it was is no change a client sees (sql/008).
    db.query("UPDATE tasks SET ancestry = NULL WHERE title = 'a1!'")
    assert db.query("SELECT change_seq FROM tasks WHERE title = 'a1!'")[0]["change_seq"] == 3


def test_concurrent_writers_never_make_a_syncing_client_miss_a_change(
    server: LiveServer, database: Database
) -> None:
    """Six API connections and three slow SQL transactions create, edit, complete and delete one
    user's tasks while a client syncs in a loop; once the writers stop and the client catches up,
    its copy equals the server's.

    The SQL writers hold their transaction open a few milliseconds after writing, so transactions
    commit in another order than they wrote: exactly what makes a global sequence or an
    `updated_at` watermark skip changes (a variant of this test with a global sequence fails).
    """
    user = new_user()
    headers = auth(user, ttl=3600)

    async def api_writer(client: httpx.AsyncClient, seed: int, ids: list[str]) -> None:
        rng = random.Random(seed)
        for step in range(60):
            action = rng.random()
            if action < 0.4 or not ids:
                response = await client.post(
                    f"/api/{user}/tasks", json={"title": f"w{seed}-{step}"}, headers=headers
                )
                ids.append(response.json()["data"]["id"])
            elif action < 0.65:
                task_id = rng.choice(ids)
                await client.patch(
                    f"/api/{user}/tasks/{task_id}", json={"title": f"e{seed}-{step}"}, headers=headers
                )
            elif action < 0.85:
                await client.patch(f"/api/{user}/tasks/{rng.choice(ids)}/complete", headers=headers)
            else:
                task_id = rng.choice(ids)
                ids.remove(task_id)
                await client.delete(f"/api/{user}/tasks/{task_id}", headers=headers)

    async def slow_writer(seed: int, ids: list[str]) -> None:
        rng = random.Random(100 + seed)
        conn = await asyncpg.connect(asyncpg_dsn(database.url))
        try:
            for step in range(40):
                async with conn.transaction():
                    # As every writer of a user's tasks does (sql/008): the user's lock first.
                    await conn.execute("SELECT lock_user($1)", user)
                    if rng.random() < 0.3 or not ids:
                        new_id = uuid7(datetime.now(UTC))
                        await conn.execute(
                            """INSERT INTO tasks (user_id, id, title, created_at, updated_at, position)
                               VALUES ($1, $2, $3, now(), now(), $4)""",
                            user,
                            new_id,
                            f"s{seed}-{step}",
                            # Far from the API's new-first keys, which count down from 0.
                            int_key(1_000_000 + seed * 1000 + step),
                        )
                        ids.append(str(new_id))
                    elif rng.random() < 0.8:
                        await conn.execute(
                            """UPDATE tasks SET title = $3, version = version + 1, updated_at = now()
                               WHERE user_id = $1 AND id = $2""",
                            user,
                            uuid.UUID(rng.choice(ids)),
                            f"slow {seed}-{step}",
                        )
                    else:
                        task_id = rng.choice(ids)
                        ids.remove(task_id)
                        await conn.execute(
                            "DELETE FROM tasks WHERE user_id = $1 AND id = $2", user, uuid.UUID(task_id)
                        )
                    await asyncio.sleep(rng.uniform(0, 0.02))  # written, not yet committed
        finally:
            await conn.close()

    async def syncing_client(client: httpx.AsyncClient, stop: asyncio.Event, local: dict[str, Any]) -> int:
        since: str | None = None
        pages = 0
        while True:
            stopping = stop.is_set()
            while True:
                params: dict[str, Any] = {"limit": 7, **({"since": since} if since else {})}
                body = (await client.get(f"/api/{user}/tasks/changes", params=params, headers=headers)).json()
                pages += 1
                _apply(local, body)
                since = body["meta"]["next_since"]
                if not body["meta"]["has_more"]:
                    break
            if stopping:
                return pages
            await asyncio.sleep(0)

    async def run() -> tuple[dict[str, Any], int]:
        limits = httpx.Limits(max_connections=10)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as client:
            stop = asyncio.Event()
            local: dict[str, Any] = {}
            shared: list[str] = []
            reader = asyncio.create_task(syncing_client(client, stop, local))
            await asyncio.gather(
                *(api_writer(client, seed, shared) for seed in range(6)),
                *(slow_writer(seed, shared) for seed in range(3)),
            )
            stop.set()
            return local, await reader

    local, pages = asyncio.run(run())
    with server.client() as client:
        expected = _server_tasks(client, user)
    assert pages > 10  # the client really synced while the writers wrote
    assert len(expected) > 20
    assert local == expected


def test_one_statement_on_many_tasks_numbers_each_once(
    client: httpx.Client, user: str, database: Database
) -> None:
    """Bulk statements (a rebalance, clear-completed) take one number per task and write the user's row
    once per statement, not once per task."""
    token = _changes(client, user).json()["meta"]["next_since"]
    database.query(
        f"""INSERT INTO tasks (user_id, id, title, completed, completed_at, position)
           SELECT $1, gen_random_uuid(), 'bulk ' || g, g % 2 = 0, CASE WHEN g % 2 = 0 THEN now() END,
                  {sql_int_key("g")}
           FROM generate_series(1, 3000) g""",  # noqa: S608 - constant SQL
        user,
    )
    database.query(
        "UPDATE tasks SET title = title || '!', version = version + 1 WHERE user_id = $1 AND NOT completed",
        user,
    )
    database.query("DELETE FROM tasks WHERE user_id = $1 AND completed", user)
    numbers = database.query(
        """SELECT change_seq FROM tasks WHERE user_id = $1
           UNION ALL SELECT change_seq FROM task_tombstones WHERE user_id = $1""",
        user,
    )
    seqs = sorted(r["change_seq"] for r in numbers)
    assert len(seqs) == len(set(seqs)) == 3000
    head = database.query("SELECT change_seq FROM users WHERE id = $1", user)[0]["change_seq"]
    assert head == 3000 + 1500 + 1500 == seqs[-1]
    local: dict[str, Any] = {}
    _sync(client, user, local, token, limit=1000)
    assert local == _server_tasks(client, user)
    assert len(local) == 1500
