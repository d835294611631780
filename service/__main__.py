"""Command line: `python -m service [serve|migrate|token USER_ID [--ttl S]|psql [ARGS...]]`."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import asyncpg

from service.auth.dev_secret import with_development_secret
from service.auth.tokens import mint_token
from service.db.migrations import CONNECT_TIMEOUT, MigrationError, migrate
from service.ops.logs import logging_config
from service.settings import LOCAL_DEV_ORIGINS, ConfigError, DatabaseSettings, Settings

# How long a release's `migrate` waits for a free connection before it fails the deploy.
MIGRATE_WAIT_SECONDS = 120.0


def _database_url(database: DatabaseSettings) -> str:
    """DATABASE_URL, or else the embedded PostgreSQL's, started (or reused) for this process."""
    if database.database_url is not None:
        return database.database_url
    from service.db.pool import start_embedded

    url = start_embedded(database.data_dir)
    # Workers are new processes that read the environment: they must find the same database.
    os.environ["DATABASE_URL"] = url
    return url


def _where(url: str) -> str:
    """Where a database is, for an error message: never its password."""
    parts = urlsplit(url)
    if not parts.hostname:
        return "the embedded database"
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def _migrate(url: str) -> None:
    from service.db.pool import asyncpg_dsn

    deadline = time.monotonic() + MIGRATE_WAIT_SECONDS
    while True:
        try:
            applied = asyncio.run(migrate(asyncpg_dsn(url)))
            break
        except asyncpg.TooManyConnectionsError:
            # The running release holds every connection for a moment (or too many workers do):
            # wait for one to come free rather than fail the deploy.
            if time.monotonic() > deadline:
                raise MigrationError(
                    f"cannot migrate {_where(url)}: no free connection within {MIGRATE_WAIT_SECONDS:g} s"
                    " (see the connection budget: WEB_CONCURRENCY, DB_POOL_SIZE, DB_MAX_CONNECTIONS)"
                ) from None
            print("migrate: the database has no free connection yet; waiting", file=sys.stderr, flush=True)
            time.sleep(2)
        except TimeoutError:
            raise MigrationError(
                f"cannot migrate {_where(url)}: no answer within {CONNECT_TIMEOUT:g} s"
            ) from None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # Wrong password, database down, TLS refused, a failing statement: one line, like a config error.
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MigrationError(f"cannot migrate {_where(url)}: {reason}") from None
    print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}", file=sys.stderr)


def _within_budget(settings: Settings) -> Settings:
    """Shrink each worker's pool to what the database allows, with a line saying so; fail if none fits."""
    from service.db.budget import fit, read_budget
    from service.db.pool import asyncpg_dsn

    assert settings.database_url is not None

    async def budget() -> tuple[int, str | None]:
        conn = await asyncpg.connect(asyncpg_dsn(settings.database_url or ""), timeout=CONNECT_TIMEOUT)
        try:
            found = await read_budget(conn, settings.db_max_connections)
        finally:
            await conn.close()
        return fit(found, settings.web_concurrency, settings.pool_max_size)

    try:
        pool, line = asyncio.run(budget())
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        # The service starts while the database is down (it reconnects by itself): unchecked, then.
        print(f"connection budget not checked: {type(exc).__name__}", file=sys.stderr, flush=True)
        return settings
    if line is None:
        return settings
    print(line, file=sys.stderr, flush=True)
    # Workers are new processes that read the environment.
    os.environ["DB_POOL_SIZE"], os.environ["DB_POOL_MAX_OVERFLOW"] = str(pool), "0"
    return replace(settings, pool_size=pool, pool_max_overflow=0)


def _local_banner(settings: Settings) -> str:
    """What a developer needs after a local start: where things are and how to get a token."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    base = f"http://{host}:{settings.port}"
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    return "\n".join(
        [
            "Todo API on an embedded PostgreSQL",
            f"  API       {base}/api/USER_ID/tasks",
            f"  docs      {base}/docs",
            f"  token     {python} -m service token USER_ID    (a 1-hour Bearer token for USER_ID)",
            f"  data      {settings.data_dir.expanduser().resolve()}    (open it: {python} -m service psql)",
            f"  CORS      {', '.join(settings.cors_origins) or 'none'}    (set CORS_ORIGINS to change)",
            "  stop      Ctrl+C (the embedded PostgreSQL stops with the service)",
        ]
    )


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal it shut down on, once in-flight requests are done: exit 0 (a
    # clean stop, as the platform expects), and let atexit stop the embedded database if any.
    sys.exit(0)


def _metrics_across_workers(settings: Settings) -> None:
    """With several workers, have prometheus_client sum their metrics through files in a fresh folder."""
    if not settings.metrics_enabled or settings.web_concurrency == 1:
        return
    if settings.metrics_dir is not None:
        # A previous run's files would be summed in: start from zero, as a new process does.
        settings.metrics_dir.mkdir(parents=True, exist_ok=True)
        for stale in settings.metrics_dir.glob("*.db"):
            stale.unlink()
        return
    folder = tempfile.mkdtemp(prefix="todo-metrics-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    # Read by prometheus_client (and Settings) when the workers import it: they are new processes.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder


def _serve(settings: Settings) -> None:
    import uvicorn

    from service.web.http_protocol import uvicorn_options

    _port_is_free(settings.host, settings.port)
    embedded = settings.database_url is None
    url = _database_url(DatabaseSettings(settings.database_url, settings.data_dir))
    if embedded:
        # After the database folder exists: the development secret lives in it.
        settings = with_development_secret(settings)
        if settings.better_auth_secret is not None:
            os.environ["BETTER_AUTH_SECRET"] = settings.better_auth_secret  # for the workers too
        if not settings.cors_origins:
            # A frontend's dev server on this machine may call the local API; CORS_ORIGINS overrides.
            settings = replace(settings, cors_origins=LOCAL_DEV_ORIGINS)
            os.environ["CORS_ORIGINS"] = ",".join(LOCAL_DEV_ORIGINS)
    settings = replace(settings, database_url=url)
    if embedded:
        _migrate(url)
    settings = _within_budget(settings)
    if embedded:
        print(_local_banner(settings), file=sys.stderr, flush=True)
    _metrics_across_workers(settings)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.web_concurrency,
        log_level=settings.log_level,
        log_config=logging_config(settings.log_level),
        access_log=False,
        loop="uvloop",
        timeout_graceful_shutdown=25,
        **uvicorn_options(settings),
    )


def _psql(database: DatabaseSettings, args: list[str]) -> int:
    """psql (the one pgserver ships) on the embedded database, started for as long as psql runs."""
    if database.database_url is not None:
        raise ConfigError('DATABASE_URL is set: open that database with `psql "$DATABASE_URL"`')
    from service.db.pool import embedded_psql

    url = _database_url(database)
    return subprocess.call([str(embedded_psql()), url, *args])  # noqa: S603 - our own binary and URL


def _lifetime(text: str) -> int:
    """A token lifetime: a positive number of seconds (mint_token holds it to JWT_MAX_AGE)."""
    try:
        seconds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if seconds < 1:
        raise argparse.ArgumentTypeError("must be at least 1 second: a token of 0 s is expired already")
    return seconds


def _port_is_free(host: str, port: int) -> None:
    """Fail in one line before the banner, rather than after it with uvicorn's traceback-free error."""
    try:
        with socket.create_server((host or "0.0.0.0", port)):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another server running?)"
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP server (the default)")
    commands.add_parser("migrate", help="apply the migrations in sql/")
    token = commands.add_parser("token", help="print an HS256 token for USER_ID")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=_lifetime, default=3600, help="lifetime in seconds (default 3600)")
    psql = commands.add_parser("psql", help="open psql on the embedded database (DATA_DIR)")
    psql.add_argument("args", nargs="*", help="passed on to psql as they are, e.g. -c 'TABLE tasks'")
    argv = sys.argv[1:] if argv is None else argv
    # Everything after `psql` is psql's, options included: argparse would try to read them.
    psql_args = argv[1:] if argv[:1] == ["psql"] else []
    args = parser.parse_args(argv[:1] if psql_args else argv)

    try:
        if args.command == "migrate":
            # Only the database matters here: a release step need not hold the token secret.
            _migrate(_database_url(DatabaseSettings.from_env()))
        elif args.command == "psql":
            return _psql(DatabaseSettings.from_env(), psql_args)
        elif args.command == "token":
            print(mint_token(with_development_secret(Settings.from_env()), args.user_id, args.ttl))
        else:
            _serve(Settings.from_env())
    except (ConfigError, MigrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
