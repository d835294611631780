"""Times every request once and hands it to the access log and the metrics, by route template."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.ops.access_log import AccessLog
from service.ops.metrics import Metrics
from service.web.envelope import request_id

UNMATCHED = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _template(route: BaseRoute) -> str | None:
    if isinstance(route, Route):
        return route.path
    if isinstance(route, Mount):
        return route.path + "/{path}"
    return None


class RouteTemplates:
    """The path template a request was (or would have been) routed to, never the raw path with its ids."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self.routes = [route for route in routes if _template(route) is not None]
        self.by_endpoint: dict[Any, str] = {}
        for route in self.routes:
            endpoint = route.endpoint if isinstance(route, Route) else getattr(route, "app", None)
            self.by_endpoint[endpoint] = _template(route) or UNMATCHED

    def of(self, scope: Scope) -> str:
        endpoint = scope.get("endpoint")
        if endpoint is not None:
            return self.by_endpoint.get(endpoint, UNMATCHED)
        # Answered before routing (401/403 from auth, preflights, size limits): match the table once.
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return _template(route) or UNMATCHED
        return UNMATCHED


class ObservabilityMiddleware:
    """Times every request; logs it (no token, secret or task text) and counts it."""

    def __init__(
        self,
        app: ASGIApp,
        templates: RouteTemplates,
        user_key: bytes,
        metrics: Metrics | None,
        access_log: AccessLog | None,
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
            route = self.templates.of(scope)
            # Any token is a valid method to uvicorn: bound the label set a client can create.
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            if self.metrics is not None:
                self.metrics.observe(route, method, status, elapsed)
            if self.access_log is not None:
                self.access_log.write(method, route, status, elapsed, request_id(scope), self._user(scope))
