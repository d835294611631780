"""Connections: URL normalising, the asyncpg pool, and the embedded PostgreSQL for local runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import warnings
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from service.settings import ConfigError, Settings

# pgserver's list of the processes using a server, in its data folder.
HANDLE_PIDS = ".handle_pids.json"
INSTALL_LOCAL = "pip install -e '.[local]'"

# libpq options asyncpg does not understand; it would send them to the server as settings.
_LIBPQ_ONLY = {"channel_binding", "connect_timeout", "application_name_fallback", "gssencmode"}

# What "the database cannot be reached" looks like from asyncpg: these become 503, not 500.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def asyncpg_dsn(url: str) -> str:
    """Translate the URLs platforms hand out (postgres://, postgresql+asyncpg://) for asyncpg."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _LIBPQ_ONLY]
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), parts.fragment))


def _pgserver() -> ModuleType:
    """The embedded PostgreSQL package, an optional extra: only local runs without DATABASE_URL need it."""
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime folder at import; most machines set none, and
        # the fallback it warns about is fine for a local database.
        with contextlib.suppress(ImportError):  # older platformdirs neither has nor warns it
            from platformdirs.api import RuntimeDirWarning

            warnings.filterwarnings("ignore", category=RuntimeDirWarning)
        try:
            import pgserver
        except ImportError:
            raise ConfigError(
                "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
                f"run `{INSTALL_LOCAL}` for a local database, or set DATABASE_URL"
            ) from None
    return pgserver


def embedded_psql() -> Path:
    """The psql program that comes with the embedded PostgreSQL."""
    _pgserver()
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / "psql"


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the pgserver PostgreSQL in `data_dir`; return its URL."""
    pgserver = _pgserver()
    data_dir = data_dir.expanduser().resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    forget_dead_handles(data_dir)
    # "stop": the server stops when the last process using it exits; workers get its URL instead.
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    url: str = server.get_uri()
    return url


def forget_dead_handles(data_dir: Path) -> None:
    """Drop the PIDs of processes that died without saying so from pgserver's list of users.

    pgserver stops the server when the last process in `.handle_pids.json` exits; a crashed one
    stays listed for ever, so no later clean stop was ever the last, and PostgreSQL kept running.
    """
    path = data_dir / HANDLE_PIDS
    try:
        listed = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(listed, list):
        return
    alive = [pid for pid in listed if isinstance(pid, int) and _alive(pid)]
    if alive != listed:
        path.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


async def create_pool(settings: Settings) -> asyncpg.Pool:
    """A lazy pool: the service starts even while the database is down, and reconnects by itself."""
    if settings.database_url is None:
        raise ConfigError(
            "DATABASE_URL is required to connect; `python -m service` starts an embedded database"
        )
    return await asyncpg.create_pool(
        asyncpg_dsn(settings.database_url),
        min_size=0,
        max_size=settings.pool_max_size,
        timeout=settings.db_connect_timeout,
        max_inactive_connection_lifetime=300,
        # 0 behind PgBouncer in transaction mode: a prepared statement would not survive the transaction.
        statement_cache_size=settings.statement_cache_size,
        reset=_no_session_state,
    )


async def _no_session_state(connection: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query (RESET ALL, UNLISTEN, ...) when a connection goes back to the pool.

    It costs a round trip per request, and the service never sets session state, listens or
    takes advisory locks on pooled connections; asyncpg still rolls back any open transaction.
    """
