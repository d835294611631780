"""One user cannot slow everyone: no user holds more than a quarter of a worker's connections, so
three users whose every request is stuck leave the pool to a bystander, who is served at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack

import asyncpg

from service.db.pool import asyncpg_dsn
from tests.support import Database, LiveServer, auth, new_user, row_locked

POOL = 8  # a quarter of it is 2 per user
HEAVY_USERS = 3
IN_FLIGHT = 8  # MAX_INFLIGHT_PER_USER's default: each heavy user sends all it may


async def _lock_waiters(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return count


def test_three_stuck_users_leave_the_pool_to_a_bystander(
    make_server: Callable[..., LiveServer], database: Database
) -> None:
    live = make_server(pool_size=POOL, db_acquire_timeout=1.0, db_statement_timeout=20.0)
    heavy = [new_user() for _ in range(HEAVY_USERS)]
    bystander = new_user()
    with live.client() as client:
        urls = {
            user: client.post(f"/api/{user}/tasks", json={"title": "t"}, headers=auth(user)).headers[
                "location"
            ]
            for user in heavy
        }
        assert client.post(
            f"/api/{bystander}/tasks", json={"title": "mine"}, headers=auth(bystander)
        ).is_success

    async def run() -> tuple[list[int], list[int], int]:
        watcher = await asyncpg.connect(asyncpg_dsn(database.url))
        try:
            async with live.async_client(timeout=30) as c:
                async with AsyncExitStack() as locks:
                    for user, url in urls.items():
                        await locks.enter_async_context(row_locked(database.url, user, url.rsplit("/", 1)[1]))
                    stuck = [
                        asyncio.create_task(c.patch(url, json={"title": "x"}, headers=auth(user)))
                        for user, url in urls.items()
                        for _ in range(IN_FLIGHT)
                    ]
                    for _ in range(1000):  # until every connection the heavy users may hold waits on a lock
                        if await _lock_waiters(watcher) >= HEAVY_USERS * 2:
                            break
                        await asyncio.sleep(0.01)
                    served = [
                        (await c.get(f"/api/{bystander}/tasks", headers=auth(bystander))).status_code
                        for _ in range(10)
                    ]
                    waiting = await _lock_waiters(watcher)
                # The locks are gone: the stuck writes finish.
                outcomes = [response.status_code for response in await asyncio.gather(*stuck)]
            return served, outcomes, waiting
        finally:
            await watcher.close()

    served, outcomes, waiting = asyncio.run(run())
    assert served == [200] * 10
    # Two connections per heavy user, never more, were stuck on the locks.
    assert waiting == HEAVY_USERS * 2
    # The stuck ones finish once the locks go; the rest gave up waiting for their own user's share.
    assert set(outcomes) <= {200, 503}
    assert outcomes.count(200) >= HEAVY_USERS * 2
