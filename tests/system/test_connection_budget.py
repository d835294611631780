"""The connection budget: every worker's pool and listener, and a release's migration, fit in what
the database lets the service open; a migration waits for a free connection instead of failing."""

from __future__ import annotations

import asyncio
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from service.db.budget import SPARE, Budget, fit
from service.db.pool import asyncpg_dsn
from tests.support import SECRET, create_database, run_cli, start_service

ROLE_LIMIT = 20


def test_pools_shrink_to_fit_with_a_line_saying_so() -> None:
    pool, line = fit(Budget(20, "the role's connection limit"), workers=2, pool=10)
    assert pool == (20 - SPARE) // 2 - 1 == 8
    assert line is not None and "the role's connection limit allows 20" in line and "pool is 8" in line
    assert fit(Budget(100, "DB_MAX_CONNECTIONS"), workers=2, pool=10) == (10, None)


def test_a_budget_too_small_for_every_worker_is_refused() -> None:
    with pytest.raises(ValueError, match="WEB_CONCURRENCY"):
        fit(Budget(20, "DB_MAX_CONNECTIONS"), workers=17, pool=10)


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, parts.fragment))


@pytest.fixture
def limited_url(pg_admin_url: str) -> str:
    """A migrated database reached as a role allowed ROLE_LIMIT connections, as on small plans."""
    role = f"limited_{secrets.token_hex(4)}"

    async def setup() -> str:
        conn = await asyncpg.connect(asyncpg_dsn(pg_admin_url))
        try:
            await conn.execute(f"CREATE ROLE {role} LOGIN CONNECTION LIMIT {ROLE_LIMIT}")
        finally:
            await conn.close()
        url = await create_database(pg_admin_url, role)
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(f"ALTER DATABASE {role} OWNER TO {role}; ALTER SCHEMA public OWNER TO {role}")
        finally:
            await conn.close()
        return _as_role(url, role)

    url = asyncio.run(setup())
    assert run_cli(["migrate"], {"DATABASE_URL": url}).returncode == 0
    return url


def test_two_workers_on_a_role_of_20_connections_fit_and_a_release_still_migrates(limited_url: str) -> None:
    env = {"DATABASE_URL": limited_url, "BETTER_AUTH_SECRET": SECRET, "WEB_CONCURRENCY": "2"}
    with tempfile.TemporaryFile() as output:
        proc, _ = start_service(env, output=output)
        try:
            assert run_cli(["migrate"], {"DATABASE_URL": limited_url}).returncode == 0
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        output.seek(0)
        text = output.read().decode()
    assert "the role's connection limit allows 20" in text
    assert "pool is 8" in text


def test_a_migration_waits_for_a_free_connection(limited_url: str) -> None:
    async def hold_all() -> list[asyncpg.Connection]:
        return [await asyncpg.connect(asyncpg_dsn(limited_url)) for _ in range(ROLE_LIMIT)]

    loop = asyncio.new_event_loop()
    try:
        held = loop.run_until_complete(hold_all())
        migrating = subprocess.Popen(
            [sys.executable, "-m", "service", "migrate"],
            env={"DATABASE_URL": limited_url, "PATH": ""},
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3)  # it is waiting, not failing
        assert migrating.poll() is None
        loop.run_until_complete(held.pop().close())
        _, stderr = migrating.communicate(timeout=60)
    finally:
        for conn in held:
            loop.run_until_complete(conn.close())
        loop.close()
    assert migrating.returncode == 0, stderr
    assert "no free connection yet; waiting" in stderr
