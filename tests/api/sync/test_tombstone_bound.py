"""Tombstones are bounded in number per user too: past MAX_TOMBSTONES_PER_USER the purge forgets a
user's oldest, and a sync token from before the last one forgotten is 410, never a silent gap."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import asyncpg
import httpx

from service.db.pool import asyncpg_dsn
from service.db.statements import Runner
from service.sync.store import ChangeStore
from tests.support import LiveServer, assert_error, auth, fresh_database, new_user

MOST = 3


def _since(client: httpx.Client, user: str, since: str | None = None) -> httpx.Response:
    params = {} if since is None else {"since": since}
    return client.get(f"/api/{user}/tasks/changes", params=params, headers=auth(user))


def _purge(url: str) -> int:
    async def run() -> int:
        pool = await asyncpg.create_pool(asyncpg_dsn(url), min_size=0, max_size=2)
        try:
            return await ChangeStore(Runner(pool, 5, 5)).purge_tombstones(timedelta(days=1), MOST)
        finally:
            await pool.close()

    return asyncio.run(run())


def test_a_token_older_than_the_forgotten_tombstones_is_410(
    make_server: Callable[..., LiveServer], pg_admin_url: str
) -> None:
    database = fresh_database(pg_admin_url, "todo_tombstone_bound")
    live = make_server(database_url=database.url)
    user, other = new_user(), new_user()
    with live.client() as client:
        ids = [
            client.post(f"/api/{user}/tasks", json={"title": f"t{n}"}, headers=auth(user)).json()["data"][
                "id"
            ]
            for n in range(6)
        ]
        client.post(f"/api/{other}/tasks", json={"title": "few"}, headers=auth(other))
        before = _since(client, user).json()["meta"]["next_since"]
        for task_id in ids[:2]:
            assert client.delete(f"/api/{user}/tasks/{task_id}", headers=auth(user)).status_code == 200
        between = _since(client, user, before).json()["meta"]["next_since"]
        for task_id in ids[2:5]:
            assert client.delete(f"/api/{user}/tasks/{task_id}", headers=auth(user)).status_code == 200

        assert _purge(database.url) == 2  # five tombstones, three kept; the other user has none
        kept = database.query("SELECT id::text FROM task_tombstones WHERE user_id = $1", user)
        assert sorted(r["id"] for r in kept) == sorted(ids[2:5])

        # Before the forgotten deletions: it cannot be brought up to date, so a full sync.
        assert_error(_since(client, user, before), 410, "SYNC_EXPIRED")
        # After them: every deletion it still has to learn of is kept.
        caught_up = _since(client, user, between)
        assert caught_up.status_code == 200
        assert sorted(c["id"] for c in caught_up.json()["data"] if c["op"] == "delete") == sorted(ids[2:5])
        # A full sync starts past the horizon.
        fresh = _since(client, user).json()["meta"]["next_since"]
        assert _since(client, user, fresh).status_code == 200
