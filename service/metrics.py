"""Prometheus metrics: request counts and latency by route template, and the pool's connections."""

from __future__ import annotations

import hmac
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .envelope import error_response
from .errors import Unauthorized

# Seconds; Prometheus' le="+Inf" bucket is the request count.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
