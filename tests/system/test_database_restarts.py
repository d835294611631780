"""PostgreSQL stopped and started under a running service (a cluster of the module's own): 503s while
it is down, recovery without a restart, no error from connections the restart killed; event streams end and the listener comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.support.pg_cluster import PgCluster
from tests.support.servers import LiveServer
from tests.support.sse import open_stream, seq, stream_client, write_task
from tests.support.tokens import auth, new_user


def test_database_outage_answers_503_and_recovers_without_restart(
    make_server: Callable[..., LiveServer], cluster: PgCluster, cluster_db: str
) -> None:
    live = make_server(database_url=cluster_db, db_connect_timeout=2.0, db_acquire_timeout=2.0)
    user = new_user()
    with live.client(timeout=20) as client:
        acknowledged = [
            client.post(f"/api/{user}/tasks", json={"title": f"before {i}"}, headers=auth(user)).json()[
                "data"
            ]["id"]
            for i in range(5)
        ]
        cluster.stop()
        try:
            for _ in range(3):
                down = client.get(f"/api/{user}/tasks", headers=auth(user))
                assert down.status_code == 503
                assert down.headers["retry-after"].isdigit()
                assert down.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert (
                client.post(f"/api/{user}/tasks", json={"title": "lost"}, headers=auth(user)).status_code
                == 503
            )
            assert client.get("/readyz").status_code == 503
            assert client.get("/healthz").status_code == 200
        finally:
            cluster.start()
        deadline = time.monotonic() + 20
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the service did not recover"
            time.sleep(0.2)
        listed = client.get(f"/api/{user}/tasks", headers=auth(user))
        assert listed.status_code == 200
        assert {t["id"] for t in listed.json()["data"]} == set(acknowledged)
        assert (
            client.post(f"/api/{user}/tasks", json={"title": "after"}, headers=auth(user)).status_code == 201
        )


def test_restart_between_requests_surfaces_no_error(
    make_server: Callable[..., LiveServer], cluster: PgCluster, cluster_db: str
) -> None:
    """Pooled connections killed by a restart are replaced before use, not handed to a request."""
    live = make_server(database_url=cluster_db)
    user = new_user()
    with live.client(timeout=20) as client:
        for _ in range(3):
            assert client.get(f"/api/{user}/tasks", headers=auth(user)).status_code == 200
        cluster.stop()
        cluster.start()
        time.sleep(0.2)
        statuses = [client.get(f"/api/{user}/tasks", headers=auth(user)).status_code for _ in range(5)]
    assert statuses == [200] * 5


def test_a_database_restart_ends_streams_and_the_listener_comes_back(
    make_server: Callable[..., LiveServer], cluster: PgCluster, cluster_db: str
) -> None:
    live = make_server(database_url=cluster_db, db_connect_timeout=2.0, db_acquire_timeout=2.0)
    user = new_user()

    async def run() -> None:
        async with stream_client(live.base_url) as client:
            async with open_stream(client, user) as stream:
                await stream.until("ready")
                await write_task(client, user, "before")
                before = await stream.until("changed")
                await asyncio.to_thread(cluster.stop)
                try:
                    # The stream ends (the client reconnects and resyncs) rather than go silently deaf.
                    while (event := await stream.next(wait=30)) is not None:
                        assert event.event != "changed"
                finally:
                    await asyncio.to_thread(cluster.start)
            deadline = time.monotonic() + 30
            while True:
                async with open_stream(client, user, last_event_id=before.id) as stream:
                    if stream.response.status_code == 200:
                        await stream.until("ready")
                        await write_task(client, user, "after")
                        assert seq(user, (await stream.until("changed")).since) == 2
                        break
                    assert stream.response.status_code == 503
                assert time.monotonic() < deadline, "no stream after the database came back"
                await asyncio.sleep(0.2)

    asyncio.run(run())
