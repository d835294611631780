"""The README's first command, run for real: no DATABASE_URL and no secret, so the embedded PostgreSQL
starts, the banner says where everything is, and `token` signs with the development secret."""

from __future__ import annotations

import signal
import stat
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.servers import run_cli, start_service
from tests.support.tokens import SECRET


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
            # A Next.js dev server on this machine may call it; another origin hears which setting to change.
            ask = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
            preflight = httpx.options(
                f"{base}/api/banner-user/tasks", headers={"Origin": "http://localhost:3000", **ask}
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
            refused = httpx.options(
                f"{base}/api/banner-user/tasks", headers={"Origin": "https://elsewhere.example", **ask}
            )
            assert refused.status_code == 403
            assert "CORS_ORIGINS" in refused.json()["error"]["message"]
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
    assert "http://localhost:3000" in text  # the banner says which origins may call it
    assert "RuntimeDirWarning" not in text and "Traceback" not in text


def test_a_local_better_auth_is_wired_with_nothing_but_its_url(tmp_path: Path) -> None:
    """BETTER_AUTH_URL alone, on the embedded database: no CURSOR_SECRET asked for; tokens of the
    local Better Auth (its JWKS) and of the banner's `token` command are both accepted."""
    from joserfc import jwt
    from joserfc.jwk import OKPKey

    from tests.support.jwks_server import JwksServer

    key = OKPKey.generate_key("Ed25519", parameters={"kid": "local"})
    data = tmp_path / "data"
    with JwksServer([key]) as auth_server:
        env = {"DATA_DIR": str(data), "HOME": str(tmp_path), "BETTER_AUTH_URL": auth_server.base_url}
        with tempfile.TemporaryFile() as output:
            proc, base = start_service(env, output=output)
            try:
                now = int(time.time())
                claims = {"sub": "ba-user", "iat": now, "exp": now + 900}
                claims["iss"] = claims["aud"] = auth_server.base_url  # as Better Auth sets them
                signed = jwt.encode({"alg": "EdDSA", "kid": "local"}, claims, key, algorithms=["EdDSA"])
                from_better_auth = httpx.get(
                    f"{base}/api/ba-user/tasks", headers={"Authorization": f"Bearer {signed}"}
                )
                assert from_better_auth.status_code == 200, from_better_auth.text
                minted = run_cli(["token", "cli-user"], env)
                assert minted.returncode == 0, minted.stderr
                from_cli = httpx.get(
                    f"{base}/api/cli-user/tasks", headers={"Authorization": f"Bearer {minted.stdout.strip()}"}
                )
                assert from_cli.status_code == 200, from_cli.text
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            output.seek(0)
            text = output.read().decode()
    assert "CURSOR_SECRET" not in text and "Traceback" not in text


def test_after_a_crash_the_next_clean_stop_stops_the_embedded_database(tmp_path: Path) -> None:
    """kill -9 leaves the dead PID in pgserver's list; the next clean stop must still stop PostgreSQL."""
    data = tmp_path / "data"
    env = {"DATA_DIR": str(data), "HOME": str(tmp_path)}
    crashed, _ = start_service(env)
    crashed.kill()
    crashed.wait(timeout=30)
    assert (data / "postmaster.pid").exists()  # PostgreSQL outlived the crash, as it may
    proc, base = start_service(env)
    assert httpx.get(f"{base}/readyz").status_code == 200
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    for _ in range(100):  # pg_ctl stop -w returns once it is down; allow the exit a moment
        if not (data / "postmaster.pid").exists():
            break
        time.sleep(0.1)
    assert not (data / "postmaster.pid").exists(), "the embedded PostgreSQL is still running"
