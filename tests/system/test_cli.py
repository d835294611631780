"""`python -m service` and its commands: loud one-line refusals, `migrate`, and the `token` command."""

from __future__ import annotations

import asyncio
import secrets
import socket
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import create_database
from tests.support.servers import run_cli
from tests.support.tokens import SECRET

GOOD = {"BETTER_AUTH_SECRET": SECRET}
EXTERNAL_DB = {"DATABASE_URL": "postgres://u:p@db.example:5432/todo"}


def test_start_is_refused_with_one_clear_line() -> None:
    result = run_cli([], {"BETTER_AUTH_SECRET": "too-short"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: BETTER_AUTH_SECRET must be at least 32 characters long; "
        "make one with python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BETTER_AUTH_SECRET": "dev-secret-change-me-0123456789abcdef"}, "published example"),
        ({"BETTER_AUTH_JWKS_URL": "https://auth.example.com/jwks", "CURSOR_SECRET": SECRET}, "JWT_ALLOW_ANY"),
        ({"BETTER_AUTH_URL": "http://auth.example.com", "CURSOR_SECRET": SECRET}, "must come over https"),
        ({**EXTERNAL_DB}, "no way to verify tokens"),
    ],
    ids=["example-secret", "unbound-jwks", "plain-http-jwks", "database-without-secret"],
)
def test_unsafe_configurations_refuse_to_start(env: dict[str, str], message: str) -> None:
    result = run_cli([], env)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert message in line


def test_token_command_prints_a_token_the_service_accepts(client: httpx.Client) -> None:
    result = run_cli(["token", "cli-user", "--ttl", "120"], GOOD)
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    response = client.get("/api/cli-user/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_token_command_refuses_a_lifetime_the_service_would_refuse() -> None:
    result = run_cli(["token", "u1", "--ttl", "7200"], {**GOOD, "JWT_MAX_AGE": "3600"})
    assert result.returncode == 2
    assert "JWT_MAX_AGE" in result.stderr
    assert run_cli(["token", "u1", "--ttl", "3600"], {**GOOD, "JWT_MAX_AGE": "3600"}).returncode == 0


@pytest.mark.parametrize("ttl", ["0", "-5", "soon"])
def test_token_command_refuses_a_lifetime_that_is_no_lifetime(ttl: str) -> None:
    result = run_cli(["token", "u1", "--ttl", ttl], GOOD)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--ttl" in result.stderr


def test_a_busy_port_is_one_line_before_any_banner(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {"DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path), "PORT": str(port)}
        result = run_cli([], env)
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Todo API on an embedded" not in result.stderr  # no banner first
    assert not (tmp_path / "data").exists()  # nor a database started for nothing


def test_token_before_the_first_start_says_what_to_do(tmp_path: Path) -> None:
    result = run_cli(["token", "u1"], {"DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "start the server once" in result.stderr
    assert not (tmp_path / "data").exists()  # nothing written where initdb will want an empty folder


def test_migrate_needs_no_token_secret(pg_admin_url: str) -> None:
    url = asyncio.run(create_database(pg_admin_url, f"bare_{secrets.token_hex(4)}"))
    result = run_cli(["migrate"], {"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "migrations applied: 001_" in result.stderr
    again = run_cli(["migrate"], {"DATABASE_URL": url})
    assert again.stderr.strip() == "migrations applied: none (up to date)"


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
