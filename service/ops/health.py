"""Liveness and readiness, outside /api/ and without a token."""

from __future__ import annotations

from msgspec import Struct
from starlette.requests import Request
from starlette.responses import Response

from service.db.pool import UNAVAILABLE_ERRORS
from service.db.schema_state import not_migrated
from service.db.state import DbState
from service.openapi.operation import EXAMPLE_META, ApiRoute, Operation
from service.web.envelope import error_response, json_response, meta
from service.web.errors import unavailable
from service.web.schemas import ResponseMeta

READY_TIMEOUT = 2.0


class Health(Struct):
    status: str


class HealthEnvelope(Struct):
    data: Health
    meta: ResponseMeta


async def healthz(request: Request) -> Response:
    """The process is up; deliberately no database call, so a database outage never restarts it."""
    return json_response(request.scope, 200, HealthEnvelope(Health(status="ok"), meta(request.scope)))


async def readyz(request: Request[DbState]) -> Response:
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


HEALTHZ = Operation(
    "healthz",
    "The process is running",
    200,
    HealthEnvelope,
    (),
    ok_example=HealthEnvelope(Health(status="ok"), EXAMPLE_META),
    authenticated=False,
)
READYZ = Operation(
    "readyz",
    "The database answers",
    200,
    HealthEnvelope,
    (503,),
    ok_example=HealthEnvelope(Health(status="ready"), EXAMPLE_META),
    authenticated=False,
)

routes = [ApiRoute("/healthz", healthz, get=HEALTHZ), ApiRoute("/readyz", readyz, get=READYZ)]
