"""CONTRACT §5 and §10: the unexpected answers 500 without internals; an unreachable or too slow
database answers 503."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg
import httpx
import pytest
from starlette.routing import Route

from service.app import create_app
from service.db.pool import asyncpg_dsn
from tests.support.assertions import assert_error, assert_statement_timeout
from tests.support.clients import UserClient
from tests.support.postgres import Database, row_locked
from tests.support.servers import LiveServer, settings_for
from tests.support.tokens import auth


def test_unexpected_error_is_500_without_internals(database: Database) -> None:
    settings = settings_for(database.url)
    app = create_app(settings)

    async def explode(request: object) -> None:
        raise RuntimeError("secret internals: /etc/passwd SELECT * FROM tasks")

    app.router.routes.append(Route("/boom", explode))
    with LiveServer(settings, app) as live, live.client() as client:
        response = client.get("/boom", headers={"X-Request-ID": "r-500"})
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "INTERNAL_ERROR"
    assert body["meta"]["request_id"] == "r-500" == response.headers["x-request-id"]
    assert "secret" not in response.text
    assert "passwd" not in response.text
    assert "SELECT" not in response.text


def test_unreachable_database_is_503_with_retry_after(
    make_server: Callable[..., LiveServer], user: str
) -> None:
    # Port 1 on loopback refuses at once: the database is "down" from the first request on.
    live = make_server(database_url="postgresql://postgres@127.0.0.1:1/none", db_connect_timeout=2.0)
    with live.client() as client:
        for method, path, body in [
            ("GET", "/tasks", None),
            ("POST", "/tasks", {"title": "lost?"}),
            ("GET", "/tasks/00000000-0000-7000-8000-000000000000", None),
        ]:
            response = client.request(method, f"/api/{user}{path}", json=body, headers=auth(user))
            assert response.status_code == 503
            assert response.headers["retry-after"].isdigit()
            assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert "127.0.0.1" not in response.text
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["retry-after"].isdigit()
        assert client.get("/healthz").status_code == 200
        # Auth still comes first: a database outage is no reason to tell an anonymous caller anything.
        assert client.get(f"/api/{user}/tasks").status_code == 401


def test_statement_past_the_timeout_is_503_and_logged(
    make_server: Callable[..., LiveServer], database: Database, user: str, caplog: pytest.LogCaptureFixture
) -> None:
    # One pool connection: the request after the timeout proves the cancelled connection came back usable.
    # A whole second, so that on a loaded machine only the blocked statement ever reaches it.
    live = make_server(db_statement_timeout=1.0, pool_size=1)
    caplog.set_level(logging.WARNING, logger="service.store")
    assert_statement_timeout(live, database.url, user)
    [record] = [r for r in caplog.records if r.name == "service.store"]
    assert "statement cancelled after 1s" in record.getMessage()
    assert "UPDATE tasks" in record.getMessage()
    assert user not in record.getMessage()


def test_a_request_waiting_past_db_acquire_timeout_for_a_connection_is_503(
    make_server: Callable[..., LiveServer], database: Database, user: str
) -> None:
    """The pool's one connection is held by a blocked write: the next request gives up after
    DB_ACQUIRE_TIMEOUT with a 503, and the blocked write still completes once its lock goes."""
    live = make_server(db_statement_timeout=10.0, db_acquire_timeout=0.3, pool_size=1)
    with live.client() as client:
        created = client.post(f"/api/{user}/tasks", json={"title": "original"}, headers=auth(user))
        url, task_id = created.headers["location"], created.json()["data"]["id"]

    async def run() -> tuple[httpx.Response, httpx.Response]:
        watcher = await asyncpg.connect(asyncpg_dsn(database.url))
        try:
            async with live.async_client() as c:
                async with row_locked(database.url, user, task_id):
                    blocked = asyncio.create_task(c.patch(url, json={"title": "changed"}, headers=auth(user)))
                    # Until the write waits on the lock, holding the pool's only connection.
                    for _ in range(1000):
                        if await watcher.fetchval(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                        ):
                            break
                        await asyncio.sleep(0.01)
                    else:
                        raise AssertionError("the write never came to wait on the lock")
                    waiting = await c.get(f"/api/{user}/tasks", headers=auth(user))
                return waiting, await blocked
        finally:
            await watcher.close()

    waiting, blocked = asyncio.run(run())
    assert waiting.status_code == 503, waiting.text
    assert waiting.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert waiting.headers["retry-after"].isdigit()
    assert blocked.status_code == 200, blocked.text
    assert blocked.json()["data"]["title"] == "changed"


def test_a_search_past_the_timeout_is_503_and_leaves_no_transaction_open(
    make_server: Callable[..., LiveServer], database: Database, user: str
) -> None:
    """Searches run in a transaction of their own (for their plan): a cancel must end it cleanly."""
    live = make_server(db_statement_timeout=1.0, pool_size=1)
    with live.client() as client:
        me = UserClient(client, user)
        task = me.create("needle")

        async def blocked_search() -> httpx.Response:
            conn = await asyncpg.connect(asyncpg_dsn(database.url))
            try:
                async with conn.transaction():
                    # Even readers wait behind this lock, for the few tenths of a second this takes.
                    await conn.execute("LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
                    async with live.async_client() as blocked:
                        return await blocked.get(me.tasks_url, params={"q": "needle"}, headers=me.headers)
            finally:
                await conn.close()

        assert_error(asyncio.run(blocked_search()), 503, "SERVICE_UNAVAILABLE")
        # The pool's one connection is usable again, outside any transaction.
        assert me.ids(q="needle") == [task["id"]]
        assert me.request("PATCH", f"/{task['id']}", json={"title": "needle 2"}).status_code == 200
