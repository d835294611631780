"""Liveness and readiness, outside /api/ and without a token."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.db.pool import UNAVAILABLE_ERRORS
from service.db.schema_state import not_migrated
from service.state import AppState
from service.tasks.schemas import Health, HealthEnvelope
from service.web.envelope import error_response, json_response, meta
from service.web.errors import unavailable

READY_TIMEOUT = 2.0


async def healthz(request: Request) -> Response:
    """The process is up; deliberately no database call, so a database outage never restarts it."""
    return json_response(request.scope, 200, HealthEnvelope(Health(status="ok"), meta(request.scope)))


async def readyz(request: Request[AppState]) -> Response:
    """Ready when the database answers and holds every migration this code needs."""
    pool = request.state["pool"]
    schema = request.state["schema"]
    try:
        if pending := await schema.pending():
            return error_response(request.scope, not_migrated(pending))
        async with pool.acquire(timeout=READY_TIMEOUT) as conn:
            await conn.fetchval("SELECT 1", timeout=READY_TIMEOUT)
    except UNAVAILABLE_ERRORS:
        return error_response(request.scope, unavailable())
    return json_response(request.scope, 200, HealthEnvelope(Health(status="ready"), meta(request.scope)))


routes = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
