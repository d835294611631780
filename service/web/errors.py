"""Typed API errors; `envelope.error_response` is the one place they become JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from service.web.limits import MAX_BODY_BYTES, MAX_HEADER_BYTES, MAX_URL_BYTES
from service.web.schemas import FieldError

# Retry-After, in seconds, by cause: the one place each wait is chosen.
RETRY_UNAVAILABLE = "5"  # the database is down, or a statement ran past its timeout
RETRY_BUSY = "1"  # the user's requests in flight, or the worker's connections, are at their cap
RETRY_KEYS = "3600"  # the user holds MAX_IDEMPOTENCY_KEYS keys: the hourly purge frees some
RETRY_STREAMS = "5"  # the user has MAX_STREAMS_PER_USER event streams open
# The schema is behind the code: an operator has to act, so polling clients need not come back soon.
RETRY_MIGRATING = "30"


class ApiError(Exception):
    """An error the client is told about, with its status and machine-readable code."""

    status: int = 500
    code: str = "INTERNAL_ERROR"
    message: str = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if message is not None:
            self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})
        super().__init__(self.message)


class BadRequest(ApiError):
    status, code, message = 400, "BAD_REQUEST", "Request body is not valid JSON"


class Unauthorized(ApiError):
    status, code, message = 401, "UNAUTHORIZED", "Invalid or missing bearer token"


class Forbidden(ApiError):
    status, code, message = 403, "FORBIDDEN", "You may only access your own tasks"


class NotFound(ApiError):
    status, code, message = 404, "NOT_FOUND", "Not found"


class MethodNotAllowed(ApiError):
    status, code, message = 405, "METHOD_NOT_ALLOWED", "Method not allowed"


class RequestTimeout(ApiError):
    status, code, message = (
        408,
        "REQUEST_TIMEOUT",
        "The request body stopped arriving; the connection is closed",
    )


class Conflict(ApiError):
    status, code, message = 409, "CONFLICT", "Conflict"


class QuotaExceeded(ApiError):
    """A 409 of its own code: the user holds MAX_TASKS_PER_USER tasks already."""

    status, code, message = 409, "QUOTA_EXCEEDED", "You already hold the most tasks allowed"


class PreconditionFailed(ApiError):
    status, code, message = 412, "PRECONDITION_FAILED", "The task has changed since the given ETag"


class PayloadTooLarge(ApiError):
    status, code, message = 413, "PAYLOAD_TOO_LARGE", f"Request body is larger than {MAX_BODY_BYTES} bytes"


class UriTooLong(ApiError):
    status, code, message = 414, "URI_TOO_LONG", f"The request URL is longer than {MAX_URL_BYTES} bytes"


class HeadersTooLarge(ApiError):
    status, code, message = (
        431,
        "HEADERS_TOO_LARGE",
        f"The request headers are larger than {MAX_HEADER_BYTES} bytes",
    )


class UnsupportedMediaType(ApiError):
    status, code, message = 415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json"


class ValidationFailed(ApiError):
    status, code, message = 422, "VALIDATION_ERROR", "The request is not valid"


class TooManyRequests(ApiError):
    status, code, message = (
        429,
        "TOO_MANY_REQUESTS",
        "Too many of your requests are in progress; try again shortly",
    )


class ServiceUnavailable(ApiError):
    status, code, message = 503, "SERVICE_UNAVAILABLE", "The database is unavailable; try again shortly"


class InternalError(ApiError):
    pass


class SyncExpired(ApiError):
    status, code = 410, "SYNC_EXPIRED"
    message = "This sync token is older than the retention; start over with a full sync"


class TooManyStreams(ApiError):
    status, code = 429, "TOO_MANY_STREAMS"
    message = "Too many open event streams for this user; close one and retry"


TASK_NOT_FOUND = "Task not found"

BY_STATUS: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PreconditionFailed,
        PayloadTooLarge,
        UriTooLong,
        HeadersTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        TooManyRequests,
        ServiceUnavailable,
        InternalError,
        SyncExpired,
    )
}


def error_codes() -> list[str]:
    """Every `error.code` the API can answer with, read off the error classes (the OpenAPI enum)."""
    found: set[str] = set()
    pending: list[type[ApiError]] = [ApiError]
    while pending:
        cls = pending.pop()
        found.add(cls.code)
        pending.extend(cls.__subclasses__())
    return sorted(found)


def invalid(field: str, message: str) -> ValidationFailed:
    """A 422 about one field."""
    return ValidationFailed(details=[FieldError(field=field, message=message)])


def unavailable(message: str | None = None) -> ServiceUnavailable:
    """A 503 that tells the client when to try again."""
    return ServiceUnavailable(message, headers={"retry-after": RETRY_UNAVAILABLE})
