"""TLS to PostgreSQL, on a cluster of the test's own: sslmode=require as Neon gives it is honoured,
and refused by a server without TLS."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn
from tests.support.pg_cluster import PgCluster, system_bin_dir
from tests.support.postgres import Database, create_database
from tests.support.servers import LiveServer
from tests.support.tokens import auth, new_user


def test_neon_style_url_uses_tls(make_server: Callable[..., LiveServer]) -> None:
    """sslmode=require&channel_binding=require, as Neon gives it: accepted, and the link is encrypted."""
    bin_dir = system_bin_dir()
    if bin_dir is None:
        pytest.skip("needs a PostgreSQL built with TLS (Debian's postgresql); pgserver's has none")
    pg = PgCluster(tls=True, bin_dir=bin_dir)
    try:
        pg.start()
        url = asyncio.run(create_database(pg.url, "todo_tls"))
        asyncio.run(migrate(asyncpg_dsn(url)))
        live = make_server(database_url=f"{url}?sslmode=require&channel_binding=require")
        user = new_user()
        with live.client() as client:
            assert (
                client.post(f"/api/{user}/tasks", json={"title": "over TLS"}, headers=auth(user)).status_code
                == 201
            )
        rows = Database(url=url, admin_url=pg.url).query(
            """SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
               WHERE a.datname = 'todo_tls' AND a.pid <> pg_backend_pid()"""
        )
        assert rows
        assert all(r["ssl"] for r in rows)  # every connection the service opened is encrypted
    finally:
        pg.destroy()


def test_sslmode_require_refuses_a_server_without_tls(
    make_server: Callable[..., LiveServer], cluster: PgCluster, cluster_db: str
) -> None:
    live = make_server(database_url=f"{cluster_db}?sslmode=require", db_connect_timeout=2.0)
    user = new_user()
    with live.client(timeout=20) as client:
        response = client.get(f"/api/{user}/tasks", headers=auth(user))
    assert response.status_code == 503
