"""Contract v3, Lists: at most MAX_LISTS_PER_USER lists per user, exact under concurrent creates."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from service.db.pool import asyncpg_dsn
from service.settings import ConfigError, Settings
from tests.api.lists.client import ListClient
from tests.support.assertions import assert_error
from tests.support.postgres import Database
from tests.support.servers import LiveServer
from tests.support.tokens import SECRET, auth, new_user


@pytest.fixture
def small(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server(max_lists_per_user=3)


def test_a_create_past_the_quota_is_409(small: LiveServer) -> None:
    with small.client() as client:
        mine = ListClient(client)
        made = [mine.create(f"l{n}")["id"] for n in range(3)]
        error = assert_error(mine.request("POST", json={"name": "one too many"}), 409, "QUOTA_EXCEEDED")
        assert "3" in error["message"]
        assert mine.ids() == made
        # Another user has a quota of their own; a deletion frees a place.
        assert ListClient(client).create("someone else's")
        assert mine.request("DELETE", f"/{made[0]}").status_code == 200
        assert mine.create("fits again")


def test_the_quota_holds_under_concurrent_creates(small: LiveServer, database: Database) -> None:
    """Creates held at their INSERT until all have arrived: each must have counted after the one before."""
    user = new_user()

    async def race() -> list[httpx.Response]:
        conn = await asyncpg.connect(asyncpg_dsn(database.url))
        try:
            async with small.async_client() as client:
                async with conn.transaction():
                    # Reads pass a SHARE lock and inserts wait: without the user's row locked
                    # first, every create would count the same lists and take the same place.
                    await conn.execute("LOCK TABLE lists IN SHARE MODE")
                    sent = [
                        asyncio.ensure_future(
                            client.post(f"/api/{user}/lists", json={"name": f"l{n}"}, headers=auth(user))
                        )
                        for n in range(8)
                    ]
                    for _ in range(200):
                        if await conn.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
                            break
                        await asyncio.sleep(0.01)
                    await asyncio.sleep(0.2)
                return list(await asyncio.gather(*sent))
        finally:
            await conn.close()

    answers = asyncio.run(race())
    assert sorted(r.status_code for r in answers) == [201] * 3 + [409] * 5, [r.text for r in answers]
    with small.client() as client:
        listed = ListClient(client, user).all()
    assert len(listed) == 3
    assert len({found["position"] for found in listed}) == 3


def test_max_lists_per_user_is_read_from_the_environment() -> None:
    base = {"BETTER_AUTH_SECRET": SECRET}
    assert Settings.from_env(base).max_lists_per_user == 500
    assert Settings.from_env({**base, "MAX_LISTS_PER_USER": "7"}).max_lists_per_user == 7
    for bad in ("0", "-1", "10001", "many", "1.5"):
        with pytest.raises(ConfigError, match="MAX_LISTS_PER_USER"):
            Settings.from_env({**base, "MAX_LISTS_PER_USER": bad})
