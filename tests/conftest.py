"""Fixtures: one real PostgreSQL per test session, one migrated database, the app served two ways.

`client` speaks HTTP to a live uvicorn server: for what the transport decides (framing, limits,
connections). `app_client` calls the same app in-process (lifespan and all) on the same database:
quicker, for the many tests about what the app answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from service.app import create_app
from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn
from tests.support.clients import UserClient
from tests.support.pg_cluster import PgCluster
from tests.support.postgres import Database, create_database, fresh_database, postgres_server
from tests.support.servers import InProcessApp, LiveServer, settings_for
from tests.support.tokens import new_user


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture(scope="session")
def database(pg_admin_url: str) -> Database:
    return fresh_database(pg_admin_url, "todo_test")


@pytest.fixture(scope="session")
def server(database: Database) -> Iterator[LiveServer]:
    with LiveServer(settings_for(database.url)) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def app_client(database: Database) -> Iterator[httpx.Client]:
    with InProcessApp(create_app(settings_for(database.url))) as app, app.client() as c:
        yield c


@pytest.fixture
def user() -> str:
    return new_user()


@pytest.fixture
def me(app_client: httpx.Client, user: str) -> UserClient:
    """A fresh user of the in-process app."""
    return UserClient(app_client, user)


@pytest.fixture
def live_me(client: httpx.Client, user: str) -> UserClient:
    """The same fresh user, over HTTP to the live server."""
    return UserClient(client, user)


@pytest.fixture
def make_server(database: Database) -> Iterator[Callable[..., LiveServer]]:
    """Start extra servers with other settings (and `clock`, a FakeClock); they stop at the end of the test."""
    started: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        clock = overrides.pop("clock", None)
        settings = settings_for(overrides.pop("database_url", database.url), **overrides)
        app = None if clock is None else create_app(settings, clock=clock.time, monotonic=clock.monotonic)
        live = LiveServer(settings, app)
        started.append(live.__enter__())
        return live

    yield start
    for live in started:
        live.__exit__(None, None, None)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """A PostgreSQL of the module's own, which its tests may stop and start."""
    pg = PgCluster()
    pg.start()
    yield pg
    pg.destroy()


@pytest.fixture(scope="module")
def cluster_db(cluster: PgCluster) -> str:
    """A migrated database `todo_cluster` on that server; returns its URL."""
    url = asyncio.run(create_database(cluster.url, "todo_cluster"))
    asyncio.run(migrate(asyncpg_dsn(url)))
    return url
