"""`python -m service migrate` against a PostgreSQL of its own that checks passwords: the right one
works, and each way of failing is one clear line that never echoes the password."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest

from tests.support.pg_cluster import PgCluster
from tests.support.servers import free_port, run_cli

PASSWORD = "right-password-4f1c"


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL that checks passwords over TCP (the suite's others trust everyone)."""
    cluster = PgCluster()
    (cluster.data / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n", "utf-8"
    )
    cluster.start()

    async def set_password() -> None:
        conn = await asyncpg.connect(host=str(cluster.dir), port=cluster.port, user="postgres")
        try:
            await conn.execute(f"ALTER ROLE postgres PASSWORD '{PASSWORD}'")
        finally:
            await conn.close()

    asyncio.run(set_password())
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_migrate_with_the_right_password_works(password_cluster: PgCluster) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{password_cluster.port}/postgres"
    result = run_cli(["migrate"], {"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        ("wrong password", "password authentication failed"),
        ("closed port", "Connect call failed"),
        ("TLS required, server has none", "SSL"),
    ],
)
def test_migration_failures_are_one_clear_line(
    password_cluster: PgCluster, problem: str, expected: str
) -> None:
    port, password, query = password_cluster.port, PASSWORD, ""
    if problem == "wrong password":
        password = "wrong-password-9d2e"
    elif problem == "closed port":
        port = free_port()
    else:
        query = "?sslmode=require"
    url = f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres{query}"
    result = run_cli(["migrate"], {"DATABASE_URL": url})
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot migrate 127.0.0.1:{port}/postgres: ")
    assert expected in line
    assert password not in result.stderr  # the URL's password is never echoed
