"""Configuration and the command line: loud failures, the token command, and the embedded database."""

from __future__ import annotations

import signal
import stat
from pathlib import Path

import httpx
import pytest

from tests.support.servers import run_cli, start_service
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


def test_token_before_the_first_start_says_what_to_do(tmp_path: Path) -> None:
    result = run_cli(["token", "u1"], {"DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)})
    assert result.returncode == 2
    assert "start the server once" in result.stderr
    assert not (tmp_path / "data").exists()  # nothing written where initdb will want an empty folder


def test_serve_on_the_embedded_database(tmp_path: Path) -> None:
    """The README's first command: no DATABASE_URL and no secret, so pgserver starts, migrations
    run, a development secret is made in the data folder, and `token` signs with the same one."""
    env = {"DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path)}
    proc, base = start_service(env)
    try:
        result = run_cli(["token", "embedded-user"], env)
        assert result.returncode == 0, result.stderr
        token = result.stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(f"{base}/api/embedded-user/tasks", json={"title": "hello"}, headers=headers)
        assert created.status_code == 201
        listing = httpx.get(f"{base}/api/embedded-user/tasks", headers=headers)
        assert [t["title"] for t in listing.json()["data"]] == ["hello"]
        assert (tmp_path / "data" / "PG_VERSION").exists()
        secret_file = tmp_path / "data" / "dev-secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert len(secret_file.read_text().strip()) >= 32
        # Another data folder means another secret: the token is worthless elsewhere.
        elsewhere = run_cli(["token", "embedded-user"], {**env, "BETTER_AUTH_SECRET": SECRET}).stdout.strip()
        assert (
            httpx.get(
                f"{base}/api/embedded-user/tasks", headers={"Authorization": f"Bearer {elsewhere}"}
            ).status_code
            == 401
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    # The embedded PostgreSQL stops with the service instead of lingering.
    assert not (tmp_path / "data" / "postmaster.pid").exists()
