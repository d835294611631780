"""One JSON log line per request, and Prometheus metrics: both from one pure-ASGI middleware."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .envelope import error_response, request_id
from .errors import Unauthorized

access_logger = logging.getLogger("service.access")

# Seconds; Prometheus' le="+Inf" bucket is the request count.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def logging_config(level: str) -> dict[str, Any]:
    """logging.config for uvicorn.run: JSON lines on stdout; uvicorn's own access log stays off."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stdout": handler},
        "loggers": {
            "service": {"handlers": ["stdout"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["stdout"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class JsonFormatter(logging.Formatter):
    """Every log record as one JSON object per line; a record's `fields` extra is merged in."""

    _encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return self._encode(line).decode()


class Metrics:
    """Request counts by route template, method and status, and a latency histogram per route."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, list[float]] = {}  # per route: bucket counts..., then sum

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency[route] = [0.0] * (len(BUCKETS) + 2)
        histogram[bisect_left(BUCKETS, seconds)] += 1
        histogram[-1] += seconds

    def render(self, pool: asyncpg.Pool | None) -> str:
        """The Prometheus text exposition format, version 0.0.4."""
        lines = [
            "# HELP http_requests_total Requests answered, by route template, method and status.",
            "# TYPE http_requests_total counter",
        ]
        for (route, method, status), count in sorted(self.requests.items()):
            lines.append(
                f'http_requests_total{{route="{route}",method="{method}",status="{status}"}} {count}'
            )
        lines += [
            "# HELP http_request_duration_seconds Time to answer a request, by route template.",
            "# TYPE http_request_duration_seconds histogram",
        ]
        for route, histogram in sorted(self.latency.items()):
            cumulative = 0.0
            for bound, count in zip((*BUCKETS, "+Inf"), histogram[:-1], strict=True):
                cumulative += count
                lines.append(
                    f'http_request_duration_seconds_bucket{{route="{route}",le="{bound}"}} {cumulative:g}'
                )
            lines.append(f'http_request_duration_seconds_sum{{route="{route}"}} {histogram[-1]:.6f}')
            lines.append(f'http_request_duration_seconds_count{{route="{route}"}} {cumulative:g}')
        if pool is not None:
            in_use = pool.get_size() - pool.get_idle_size()
            lines += [
                "# HELP db_pool_connections Database connections of this worker, by state.",
                "# TYPE db_pool_connections gauge",
                f'db_pool_connections{{state="in_use"}} {in_use}',
                f'db_pool_connections{{state="idle"}} {pool.get_idle_size()}',
                "# HELP db_pool_max_connections The most connections this worker may open.",
                "# TYPE db_pool_max_connections gauge",
                f"db_pool_max_connections {pool.get_max_size()}",
            ]
        return "\n".join(lines) + "\n"


def route_templates(routes: Iterable[BaseRoute]) -> dict[Any, str]:
    """Endpoint -> path template, so logs and metrics never carry a user id from the raw path."""
    templates: dict[Any, str] = {}
    for route in routes:
        if isinstance(route, Route):
            templates[route.endpoint] = route.path
        elif isinstance(route, Mount):
            templates[route.app] = route.path + "/{path}"
    return templates


class ObservabilityMiddleware:
    """Times every request; logs it as JSON (no token, secret or task text) and counts it."""

    def __init__(
        self,
        app: ASGIApp,
        templates: dict[Any, str],
        user_key: bytes,
        metrics: Metrics | None,
        access_log: bool,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.templates = templates
        self.user_key = user_key
        self.metrics = metrics
        self.access_log = access_log
        self.clock = clock

    def _user(self, scope: Scope) -> str | None:
        user = scope.get("user")
        user_id = getattr(user, "user_id", None)
        if user_id is None:
            return None
        # Keyed, so the log can correlate one user's requests without naming them.
        return hashlib.blake2b(user_id.encode(), key=self.user_key, digest_size=8).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = self.clock()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            elapsed = self.clock() - start
            route = self.templates.get(scope.get("endpoint"), UNMATCHED)
            # Any token is a valid method to uvicorn: bound the label set a client can create.
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            if self.metrics is not None:
                self.metrics.observe(route, method, status, elapsed)
            if self.access_log:
                fields = {
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                    "request_id": request_id(scope),
                    "user": self._user(scope),
                }
                access_logger.info("request", extra={"fields": fields})


_METRICS_CHALLENGE = {"www-authenticate": 'Bearer realm="metrics"'}


def metrics_endpoint(metrics: Metrics, token: str | None) -> Callable[[Request], Any]:
    """GET /metrics; behind `Authorization: Bearer <METRICS_TOKEN>` when a token is configured."""
    expected = f"Bearer {token}".encode() if token else None

    async def endpoint(request: Request) -> Response:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                denied = Unauthorized("Metrics need their own bearer token", headers=_METRICS_CHALLENGE)
                return error_response(request.scope, denied)
        pool = getattr(request.state, "pool", None)
        return Response(metrics.render(pool), media_type="text/plain; version=0.0.4")

    return endpoint


def metrics_routes(metrics: Metrics | None, token: str | None) -> Sequence[Route]:
    if metrics is None:
        return []
    return [Route("/metrics", metrics_endpoint(metrics, token), methods=["GET"])]
