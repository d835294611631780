"""The composition root: each room's routes, the middleware in order, the lifespan that opens each slice."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from service.auth.jwks import JwksClient
from service.auth.signing import derive_key
from service.auth.tokens import TokenVerifier
from service.db.migrations import load as load_migrations
from service.db.pool import UNAVAILABLE_ERRORS, create_pool
from service.db.schema_state import SchemaState
from service.db.statements import Runner
from service.lists import routes as lists
from service.lists.state import lists_state
from service.middleware import cors
from service.middleware.auth import AuthMiddleware
from service.middleware.fair_use import FairUseMiddleware
from service.middleware.migration_guard import MigrationGuard
from service.middleware.observability import ObservabilityMiddleware, RouteTemplates
from service.openapi import document
from service.ops import docs, health
from service.ops.access_log import STDOUT_FILENO, AccessLog
from service.ops.metrics import Metrics, metrics_routes
from service.settings import ConfigError, Settings
from service.state import AppState
from service.sync import changes, events
from service.sync.state import sync_state
from service.tasks import routes as tasks
from service.tasks.state import tasks_state
from service.web.common_headers import CommonHeadersMiddleware
from service.web.handlers import exception_handlers

POOL_CLOSE_SECONDS = 10.0
# Allocations (net of frees) between young-generation collections; Python's default is 700.
GC_YOUNG_THRESHOLD = 7000


class App(Starlette):
    """Starlette with the common headers outside even its error middleware, so a 500 carries them too."""

    def build_middleware_stack(self) -> ASGIApp:
        return CommonHeadersMiddleware(super().build_middleware_stack())


def _settle_the_collector() -> None:
    # Everything made so far (modules, SQLAlchemy's and msgspec's tables, the pool) lives as long
    # as the process: out of the collector's sight, a full collection no longer walks ~100k
    # objects (tens of ms, a stall every request waiting then pays).
    gc.freeze()
    # A young-generation pass walks every object alive at that moment, thousands with 64 requests
    # in flight; at 700 it ran every request or two. Requests' own garbage is freed by reference
    # counting, so passes are rarely needed: a tenth as many took the collector from 4% to ~0.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


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
    access_log = AccessLog(access_log_fd) if settings.access_log else None
    metrics = Metrics(settings.metrics_dir) if settings.metrics_enabled else None
    expected_migrations = [migration.name for migration in load_migrations()]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[AppState]:
        pool = await create_pool(settings)
        runner = Runner(pool, settings.db_acquire_timeout, settings.db_statement_timeout)
        schema = SchemaState(pool, expected_migrations)
        await schema.check_at_start()
        try:
            async with contextlib.AsyncExitStack() as stack:
                tasks_slice = await stack.enter_async_context(tasks_state(runner, settings))
                lists_slice = await stack.enter_async_context(lists_state(runner, settings))
                sync_slice = await stack.enter_async_context(sync_state(runner, settings))
                if jwks is not None:
                    await jwks.start()
                    stack.push_async_callback(jwks.close)
                if access_log is not None:
                    access_log.start()
                if metrics is not None:
                    sampler = asyncio.create_task(metrics.sample_pool_forever(pool))
                    stack.callback(metrics.close)
                    stack.callback(sampler.cancel)
                _settle_the_collector()
                yield AppState(
                    pool=pool, runner=runner, schema=schema, **tasks_slice, **lists_slice, **sync_slice
                )
        finally:
            try:
                await asyncio.wait_for(pool.close(), POOL_CLOSE_SECONDS)
            except TimeoutError:
                pool.terminate()
            if access_log is not None:
                access_log.close()

    # The router tries routes in order: the API's first, the changes feed before the task routes
    # (/tasks/changes must not be taken for a task id), health checks and docs after them.
    routes = [
        *changes.routes,
        *tasks.routes,
        *lists.routes,
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
            user_key=derive_key("log user v1", settings.cursor_key),
            metrics=metrics,
            access_log=access_log,
        ),
        Middleware(
            cors.CorsMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=cors.API_METHODS,
            allow_headers=cors.API_HEADERS,
            expose_headers=cors.API_EXPOSED,
            # The token travels in a header, never a cookie: pages need no credentialed requests.
            allow_credentials=False,
            max_age=cors.MAX_AGE,
        ),
        Middleware(AuthMiddleware, verifier=verifier),
        Middleware(FairUseMiddleware, limit=settings.max_inflight_per_user),
        # Innermost: an unmigrated database answers 503 with the fix, not 500s from missing tables.
        Middleware(MigrationGuard),
    ]
    app = App(
        routes=routes,
        middleware=middleware,
        exception_handlers=exception_handlers(UNAVAILABLE_ERRORS),
        lifespan=lifespan,
    )
    # Starlette would redirect `/docs/` to `/docs` on the Host header the client sent (an open
    # redirect); a trailing slash is simply another path, so 404.
    app.router.redirect_slashes = False
    # Built once, from the very routes and structs the app serves, so it cannot drift from them.
    app.state.openapi = document.encode(routes)
    return app
