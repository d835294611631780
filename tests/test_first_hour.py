"""What a new user meets first: `migrate` failing in one line, the local start's banner, `GET /`."""

from __future__ import annotations

import asyncio
import secrets
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.pg_cluster import PgCluster
from tests.support.postgres import create_database
from tests.support.servers import free_port, run_cli, start_service
from tests.support.tokens import SECRET, auth

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


def test_migrate_needs_no_token_secret(pg_admin_url: str) -> None:
    url = asyncio.run(create_database(pg_admin_url, f"bare_{secrets.token_hex(4)}"))
    result = run_cli(["migrate"], {"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "migrations applied: 001_" in result.stderr
    again = run_cli(["migrate"], {"DATABASE_URL": url})
    assert again.stderr.strip() == "migrations applied: none (up to date)"


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


def test_without_the_embedded_database_the_start_says_what_to_install(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "pgserver"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('pgserver is not installed')\n")
    env = {"BETTER_AUTH_SECRET": SECRET, "DATA_DIR": str(tmp_path / "data")}
    for command in ([], ["migrate"]):
        result = run_cli(command, {**env, "PYTHONPATH": str(shadow.parent)})
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "error: DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "run `pip install -e '.[local]'` for a local database, or set DATABASE_URL"
        ]


def test_local_start_says_where_everything_is(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"DATA_DIR": str(data), "HOME": str(tmp_path)}  # no secret: the development one is made
    with tempfile.TemporaryFile() as output:
        proc, base = start_service(env, output=output)
        try:
            root = httpx.get(f"{base}/", headers={"Host": "evil.example"})
            # A relative pointer: the Host header is never echoed back into a redirect.
            assert (root.status_code, root.headers["location"]) == (307, "/docs")
            assert httpx.get(f"{base}/", follow_redirects=True).url.path == "/docs"
            psql = run_cli(
                ["psql", "-tAc", "SELECT count(*) FROM schema_migrations"], {"DATA_DIR": str(data)}
            )
            assert psql.returncode == 0, psql.stderr
            assert int(psql.stdout.strip()) >= 2
            # The banner's token command works as printed, with no secret typed.
            token = run_cli(["token", "banner-user"], {"DATA_DIR": str(data)}).stdout.strip()
            listing = httpx.get(f"{base}/api/banner-user/tasks", headers={"Authorization": f"Bearer {token}"})
            assert listing.status_code == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        output.seek(0)
        text = output.read().decode()
    port = base.rsplit(":", 1)[1]
    assert f"http://127.0.0.1:{port}/docs" in text
    assert f"http://127.0.0.1:{port}/api/USER_ID/tasks" in text
    assert "-m service token USER_ID" in text
    assert str(data.resolve()) in text
    assert "RuntimeDirWarning" not in text and "Traceback" not in text


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT"])
def test_an_empty_title_reads_like_a_blank_one(client: httpx.Client, user: str, method: str) -> None:
    path = f"/api/{user}/tasks"
    if method != "POST":
        created = client.post(path, json={"title": "original"}, headers=auth(user))
        path += f"/{created.json()['data']['id']}"
    answers = [client.request(method, path, json={"title": t}, headers=auth(user)) for t in ("", "  \t")]
    assert [a.status_code for a in answers] == [422, 422]
    empty, blank = (a.json()["error"]["details"] for a in answers)
    assert empty == blank  # the same words, whichever rule the title's wording comes from
    assert [d["field"] for d in empty] == ["title"]
