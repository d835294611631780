"""Behind Debian's PgBouncer in transaction mode, on a cluster of the module's own: no statement
relies on a prepared statement, timeouts still cancel, notifications come through a direct URL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.assertions import assert_statement_timeout
from tests.support.pg_cluster import PgCluster, pgbouncer
from tests.support.servers import LiveServer
from tests.support.sse import open_stream, seq, stream_client, write_task
from tests.support.tokens import auth, new_user


@pytest.fixture
def pgbouncer_url(cluster: PgCluster, cluster_db: str) -> Iterator[str]:
    with pgbouncer(cluster, "todo_cluster") as url:
        yield url


def test_behind_pgbouncer_in_transaction_mode(
    make_server: Callable[..., LiveServer], pgbouncer_url: str
) -> None:
    live = make_server(database_url=pgbouncer_url, statement_cache_size=0, pool_size=10)
    user = new_user()

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as client:
            made = await asyncio.gather(
                *(
                    client.post(f"/api/{user}/tasks", json={"title": f"t{i}"}, headers=auth(user))
                    for i in range(30)
                )
            )
            ids = [r.json()["data"]["id"] for r in made]
            others = await asyncio.gather(
                *(client.get(f"/api/{user}/tasks/{i}", headers=auth(user)) for i in ids),
                *(client.patch(f"/api/{user}/tasks/{i}/complete", headers=auth(user)) for i in ids),
                *(
                    client.get(f"/api/{user}/tasks", params={"limit": 7, "sort": "title"}, headers=auth(user))
                    for _ in ids
                ),
            )
            return [r.status_code for r in (*made, *others)]

    # Many statements over 4 server connections shared by transaction: none may rely on a prepared statement.
    assert set(asyncio.run(burst())) == {200, 201}


def test_statement_timeout_holds_behind_pgbouncer(
    make_server: Callable[..., LiveServer], pgbouncer_url: str, cluster_db: str
) -> None:
    # PgBouncer forwards asyncpg's cancel request to the server connection the statement runs on.
    live = make_server(
        database_url=pgbouncer_url, statement_cache_size=0, pool_size=2, db_statement_timeout=1.0
    )
    user = new_user()
    assert_statement_timeout(live, cluster_db, user)
    # A search runs in a transaction of its own (SET LOCAL for its plan): fine in transaction mode.
    with live.client() as client:
        found = client.get(f"/api/{user}/tasks", params={"q": "later"}, headers=auth(user))
    assert [t["title"] for t in found.json()["data"]] == ["later"]


def test_behind_pgbouncer_notifications_come_through_database_listen_url(
    make_server: Callable[..., LiveServer], cluster: PgCluster, cluster_db: str
) -> None:
    """Writes go through a transaction-mode PgBouncer; LISTEN needs a session, so it goes direct."""
    with pgbouncer(cluster, "todo_cluster") as bouncer:
        live = make_server(database_url=bouncer, database_listen_url=cluster_db, statement_cache_size=0)
        user = new_user()

        async def run() -> None:
            async with stream_client(live.base_url) as client, open_stream(client, user) as stream:
                await stream.until("ready")
                for i in range(1, 4):
                    await write_task(client, user, f"via pgbouncer {i}")
                    assert seq(user, (await stream.until("changed")).since) == i
                body = (await client.get(f"/api/{user}/tasks/changes", headers=auth(user))).json()
                assert body["meta"]["count"] == 3

        asyncio.run(run())
