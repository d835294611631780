"""Prometheus metrics (prometheus_client): requests and latency by route template, pool connections.

With several workers, `python -m service` points PROMETHEUS_MULTIPROC_DIR at a fresh folder: each
worker then writes its samples to files there and whichever worker answers /metrics sums them,
so a scrape through the one port sees the whole process, not one worker picked by the kernel.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.openapi.operation import ApiRoute, Operation
from service.web.envelope import error_response
from service.web.errors import Unauthorized

# Seconds; Prometheus' le="+Inf" bucket is the request count.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POOL_SAMPLE_SECONDS = 1.0
# What generate_latest writes, named as every Prometheus server version reads it.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """Request counts by route template, method and status, a latency histogram per route, the pool."""

    def __init__(self, multiprocess_dir: Path | None = None) -> None:
        # prometheus_client itself reads PROMETHEUS_MULTIPROC_DIR (Settings.metrics_dir) at import.
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "Requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request, by route template.",
            ["route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        # Summed over the live workers: the connections of the whole process.
        self.pool_connections = Gauge(
            "db_pool_connections",
            "Database connections, by state.",
            ["state"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.pool_max = Gauge(
            "db_pool_max_connections",
            "The most database connections the workers may open.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        # labels() takes a lock and builds a key each time: look each label set up once.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (self.requests.labels(route, method, str(status)), self.latency.labels(route))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def sample_pool(self, pool: asyncpg.Pool) -> None:
        idle = pool.get_idle_size()
        self.pool_connections.labels("in_use").set(pool.get_size() - idle)
        self.pool_connections.labels("idle").set(idle)
        self.pool_max.set(pool.get_max_size())

    async def sample_pool_forever(self, pool: asyncpg.Pool) -> None:
        """Keep this worker's pool gauges current, for scrapes that another worker answers."""
        while True:
            self.sample_pool(pool)
            await asyncio.sleep(POOL_SAMPLE_SECONDS)

    def render(self) -> bytes:
        """The Prometheus text exposition format, version 0.0.4."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def close(self) -> None:
        """This worker stops: its gauges leave the sums (its counters stay counted)."""
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), str(self.multiprocess_dir))  # type: ignore[no-untyped-call]


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
        if pool is not None:
            metrics.sample_pool(pool)
        return Response(metrics.render(), media_type=TEXT_FORMAT)

    return endpoint


METRICS = Operation(
    "metrics",
    "Prometheus metrics (when enabled; bearer METRICS_TOKEN when set)",
    200,
    None,
    (),
    ok_content={"text/plain": {}},
    authenticated=False,
)


def metrics_routes(metrics: Metrics | None, token: str | None) -> Sequence[Route]:
    if metrics is None:
        return []
    return [ApiRoute("/metrics", metrics_endpoint(metrics, token), get=METRICS)]
