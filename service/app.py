"""The application: routes, the auth middleware, error handlers and the pool's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp

from service.auth.jwks import JwksClient
from service.auth.tokens import TokenVerifier
from service.db.migrations import load as load_migrations
from service.db.pool import UNAVAILABLE_ERRORS, create_pool
from service.db.schema_state import MigrationGuard, SchemaState
from service.middleware.auth import AuthMiddleware
from service.middleware.cors import CorsMiddleware
from service.middleware.fair_use import FairUseMiddleware
from service.middleware.observability import ObservabilityMiddleware, RouteTemplates
from service.openapi import document as openapi
from service.ops import docs, health
from service.ops.access_log import STDOUT_FILENO, AccessLog
from service.ops.metrics import Metrics, metrics_routes
from service.settings import ConfigError, Settings
from service.state import AppState
from service.sync import changes, events
from service.sync.hub import ChangeHub
from service.sync.tokens import SyncTokens
from service.tasks import routes as tasks
from service.tasks.cursors import CursorCodec
from service.tasks.store import ChangeStore, TaskStore
from service.web.common_headers import CommonHeadersMiddleware
from service.web.envelope import error_response
from service.web.errors import BY_STATUS, ApiError, InternalError, NotFound, ServiceUnavailable, unavailable

logger = logging.getLogger("service")

PURGE_INTERVAL_SECONDS = 3600.0
POOL_CLOSE_SECONDS = 10.0
# Allocations (net of frees) between young-generation collections; Python's default is 700.
GC_YOUNG_THRESHOLD = 7000

# The CORS policy: what the API's routes accept from a page, and what the page may read back.
CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CORS_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
    "Last-Event-ID",
)
CORS_EXPOSED = ("ETag", "Location", "X-Request-ID", "Retry-After", "Idempotent-Replayed")
CORS_MAX_AGE = 600


class App(Starlette):
    """Starlette with the common headers outside even its error middleware, so a 500 carries them too."""

    def build_middleware_stack(self) -> ASGIApp:
        return CommonHeadersMiddleware(super().build_middleware_stack())


async def _api_error(request: Request, exc: ApiError) -> Response:
    return error_response(request.scope, exc)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own 404 and 405 (with its Allow header), in our envelope."""
    if exc.status_code == 404:
        return error_response(request.scope, NotFound("No such route"))
    error_class = BY_STATUS.get(exc.status_code)
    if error_class is None:
        error = ApiError(exc.detail, headers=exc.headers)
        error.status, error.code = exc.status_code, HTTPStatus(exc.status_code).name
    else:
        error = error_class(headers=exc.headers)
    return error_response(request.scope, error)


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    logger.warning("database unavailable: %s", type(exc).__name__)
    return error_response(request.scope, unavailable())


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette logs the traceback when it re-raises; the client learns nothing of it.
    return error_response(request.scope, InternalError())


# A purge that cannot reach the database, or runs past the statement timeout, waits for the next.
_PURGE_SKIPPED: tuple[type[BaseException], ...] = (*UNAVAILABLE_ERRORS, ServiceUnavailable)


async def _purge_expired_keys(store: TaskStore) -> None:
    """Forget idempotency keys past their 24 hours, hourly; no cron job needed."""
    while True:
        await asyncio.sleep(PURGE_INTERVAL_SECONDS * random.uniform(0.5, 1.0))  # noqa: S311 - jitter only
        try:
            await store.purge_keys()
        except _PURGE_SKIPPED:
            logger.warning("idempotency key purge skipped: database unavailable or too slow")


def tombstone_schedule(retention: int) -> tuple[float, timedelta]:
    """How often to purge tombstones, and how long to keep them: the retention plus a margin.

    A tombstone's time is taken before its transaction commits, so one may be a little older than
    a token that must still see it; the margin (at most 5 minutes) outlasts any transaction.
    """
    return min(PURGE_INTERVAL_SECONDS, retention / 2), timedelta(seconds=retention + min(300, retention))


async def _purge_tombstones(changes: ChangeStore, retention: int) -> None:
    """Forget deletions past SYNC_RETENTION; a token that old is refused (410) anyway."""
    interval, keep = tombstone_schedule(retention)
    while True:
        await asyncio.sleep(interval * random.uniform(0.5, 1.0))  # noqa: S311 - jitter only
        try:
            await changes.purge_tombstones(keep)
        except _PURGE_SKIPPED:
            logger.warning("tombstone purge skipped: database unavailable or too slow")


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
    access_log_fd: int = STDOUT_FILENO,
) -> Starlette:
    """Build the ASGI app; `settings` default to the environment's. The clocks are for tests to move;
    access lines go to stdout unless another file descriptor is given."""
    settings = settings or Settings.from_env()
    if settings.database_url is None:
        raise ConfigError("DATABASE_URL is required here; `python -m service` starts an embedded database")
    jwks = None
    if settings.jwks_url is not None:
        jwks = JwksClient(
            settings.jwks_url,
            timeout=settings.jwks_timeout,
            refresh_seconds=settings.jwks_refresh_seconds,
            min_refetch_seconds=settings.jwks_min_refetch_seconds,
            clock=monotonic,
        )
    verifier = TokenVerifier(settings, jwks, clock=clock)
    cursors = CursorCodec(settings.cursor_key)
    access_log = AccessLog(access_log_fd) if settings.access_log else None
    metrics = Metrics(settings.metrics_dir) if settings.metrics_enabled else None
    expected_migrations = [migration.name for migration in load_migrations()]
    sync_tokens = SyncTokens(settings.cursor_key)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[AppState]:
        pool = await create_pool(settings)
        store = TaskStore(
            pool, settings.db_acquire_timeout, settings.db_statement_timeout, settings.max_tasks_per_user
        )
        schema = SchemaState(pool, expected_migrations)
        await schema.check_at_start()
        purger = asyncio.create_task(_purge_expired_keys(store))
        changes_store = ChangeStore(store)
        assert settings.listen_url is not None
        hub = ChangeHub(
            settings.listen_url, settings.db_connect_timeout, changes_store, settings.max_streams_per_user
        )
        tombstone_purger = asyncio.create_task(_purge_tombstones(changes_store, settings.sync_retention))
        if jwks is not None:
            await jwks.start()
        if access_log is not None:
            access_log.start()
        sampler = asyncio.create_task(metrics.sample_pool_forever(pool)) if metrics is not None else None
        # Everything made so far (modules, SQLAlchemy's and msgspec's tables, the pool) lives as long
        # as the process: out of the collector's sight, a full collection no longer walks ~100k
        # objects (tens of ms, a stall every request waiting then pays).
        gc.freeze()
        # A young-generation pass walks every object alive at that moment, thousands with 64 requests
        # in flight; at 700 it ran every request or two. Requests' own garbage is freed by reference
        # counting, so passes are rarely needed: a tenth as many took the collector from 4% to ~0.
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        try:
            yield AppState(
                pool=pool,
                store=store,
                cursors=cursors,
                schema=schema,
                changes=changes_store,
                sync_tokens=sync_tokens,
                sync_retention=settings.sync_retention,
                hub=hub,
            )
        finally:
            purger.cancel()
            tombstone_purger.cancel()
            await hub.close()
            if sampler is not None:
                sampler.cancel()
            if metrics is not None:
                metrics.close()
            if jwks is not None:
                await jwks.close()
            try:
                await asyncio.wait_for(pool.close(), POOL_CLOSE_SECONDS)
            except TimeoutError:
                pool.terminate()
            if access_log is not None:
                access_log.close()

    # Each handler takes the exception type it is registered for; Starlette's own annotation says
    # `Exception` for all of them, which no narrower handler satisfies, hence Any.
    handlers: dict[type[BaseException], Any] = {
        ApiError: _api_error,
        HTTPException: _http_error,
        Exception: _unexpected,
        **dict.fromkeys(UNAVAILABLE_ERRORS, _database_unavailable),
    }
    # The router tries routes in order: the API's first, the changes feed before the task routes
    # (/tasks/changes must not be taken for a task id), health checks and docs after them.
    routes = [
        *changes.routes,
        *tasks.routes,
        *events.routes,
        *health.routes,
        *docs.routes,
        *metrics_routes(metrics, settings.metrics_token),
    ]
    # Outermost first (inside the common headers): time and log everything, then CORS (it answers
    # preflights, which need no token), then the token before any route is looked up, then the
    # per-user cap, which needs to know the user. URL and header sizes are refused earlier still,
    # by the HTTP protocol (service/web/http_protocol.py).
    middleware = [
        Middleware(
            ObservabilityMiddleware,
            templates=RouteTemplates(routes),
            user_key=hashlib.sha256(b"todo-service log user v1\0" + settings.cursor_key).digest(),
            metrics=metrics,
            access_log=access_log,
        ),
        Middleware(
            CorsMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=CORS_METHODS,
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            allow_credentials=True,
            max_age=CORS_MAX_AGE,
        ),
        Middleware(AuthMiddleware, verifier=verifier),
        Middleware(FairUseMiddleware, limit=settings.max_inflight_per_user),
        # Innermost: an unmigrated database answers 503 with the fix, not 500s from missing tables.
        Middleware(MigrationGuard),
    ]
    app = App(routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan)
    # Starlette would redirect `/docs/` to `/docs` on the Host header the client sent (an open
    # redirect); a trailing slash is simply another path, so 404.
    app.router.redirect_slashes = False
    # Built once, from the very routes and structs the app serves, so it cannot drift from them.
    app.state.openapi = openapi.encode(routes)
    return app
