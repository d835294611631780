"""Command line: `python -m service [serve|migrate|token USER_ID [--ttl S]]`."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import replace
from types import FrameType

from .dev_secret import with_development_secret
from .logs import logging_config
from .migrations import MigrationError, migrate
from .settings import ConfigError, Settings
from .tokens import mint_token


def _with_database(settings: Settings) -> Settings:
    """Settings whose DATABASE_URL is set: without one, start the embedded PostgreSQL and use it."""
    if settings.database_url is not None:
        return settings
    from .db import start_embedded

    url = start_embedded(settings.data_dir)
    settings = with_development_secret(settings)
    # Workers are new processes that read the environment: they must find the same database and secret.
    os.environ["DATABASE_URL"] = url
    if settings.better_auth_secret is not None:
        os.environ["BETTER_AUTH_SECRET"] = settings.better_auth_secret
    return replace(settings, database_url=url)


def _migrate(settings: Settings) -> None:
    from .db import asyncpg_dsn

    assert settings.database_url is not None
    applied = asyncio.run(migrate(asyncpg_dsn(settings.database_url)))
    print(f"migrations applied: {', '.join(applied) or 'none (up to date)'}", file=sys.stderr)


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

    from .http_protocol import uvicorn_options

    embedded = settings.database_url is None
    settings = _with_database(settings)
    if embedded:
        _migrate(settings)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP server (the default)")
    commands.add_parser("migrate", help="apply the migrations in sql/")
    token = commands.add_parser("token", help="print an HS256 token for USER_ID")
    token.add_argument("user_id")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
        if args.command == "token":
            print(mint_token(with_development_secret(settings), args.user_id, args.ttl))
        elif args.command == "migrate":
            _migrate(_with_database(settings))
        else:
            _serve(settings)
    except (ConfigError, MigrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
