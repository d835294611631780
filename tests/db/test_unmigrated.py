"""A database nobody migrated: not ready, API calls 503 naming the fix, one log line; then it heals."""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest

from service.db.migrations import load, migrate
from service.db.pool import asyncpg_dsn
from tests.support.postgres import create_database
from tests.support.servers import LiveServer, settings_for
from tests.support.tokens import auth, new_user

FIX = "python -m service migrate"


def test_an_empty_database_is_not_ready_until_migrated(
    pg_admin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = asyncio.run(create_database(pg_admin_url, f"empty_{secrets.token_hex(4)}"))
    user = new_user()
    caplog.set_level(logging.INFO, logger="service")
    with LiveServer(settings_for(url)) as live, live.client() as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert FIX in ready.json()["error"]["message"]

        for method, path in (("GET", "/tasks"), ("POST", "/tasks"), ("GET", f"/tasks/{'0' * 32}")):
            response = client.request(method, f"/api/{user}{path}", json={"title": "x"}, headers=auth(user))
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert (error["code"], FIX in error["message"]) == ("SERVICE_UNAVAILABLE", True)
            assert response.headers["retry-after"] == "30"
        # The token is still checked first: a stranger learns nothing more than a 401.
        assert client.get(f"/api/{user}/tasks").status_code == 401

        warnings = [r.getMessage() for r in caplog.records if FIX in r.getMessage()]
        names = [m.name for m in load()]
        assert len(warnings) == 1, warnings  # once at start, not once per request
        assert all(name in warnings[0] for name in names)

        assert asyncio.run(migrate(asyncpg_dsn(url))) == names
        assert client.get("/readyz").status_code == 200
        created = client.post(f"/api/{user}/tasks", json={"title": "after migrate"}, headers=auth(user))
        assert created.status_code == 201


def test_a_partly_migrated_database_names_what_is_missing(pg_admin_url: str) -> None:
    """A deploy whose release phase did not run: the new file is pending, the old ones are not."""
    url = asyncio.run(create_database(pg_admin_url, f"partial_{secrets.token_hex(4)}"))
    asyncio.run(migrate(asyncpg_dsn(url)))
    latest = load()[-1].name
    asyncio.run(_forget(url, latest))
    user = new_user()
    with LiveServer(settings_for(url)) as live, live.client() as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "1 migration(s) pending" in ready.json()["error"]["message"]
        assert client.get(f"/api/{user}/tasks", headers=auth(user)).status_code == 503


async def _forget(url: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("DELETE FROM schema_migrations WHERE name = $1", name)
    finally:
        await conn.close()
