"""Where every exception becomes the envelope: typed API errors, Starlette's 404/405, outages, the rest."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.web.envelope import error_response
from service.web.errors import BY_STATUS, ApiError, InternalError, NotFound, unavailable

logger = logging.getLogger("service")


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


def exception_handlers(unavailable_errors: tuple[type[BaseException], ...]) -> dict[type[BaseException], Any]:
    """Starlette's handler table; `unavailable_errors` are what the database driver raises when it is down."""
    # Each handler takes the exception type it is registered for; Starlette's own annotation says
    # `Exception` for all of them, which no narrower handler satisfies, hence Any.
    return {
        ApiError: _api_error,
        HTTPException: _http_error,
        Exception: _unexpected,
        **dict.fromkeys(unavailable_errors, _database_unavailable),
    }
