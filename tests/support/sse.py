"""A small server-sent events reader for tests, over an httpx streaming response."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from service.sync.tokens import SyncTokens
from tests.support.tokens import SECRET, auth, make_token


@dataclass
class Event:
    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def since(self) -> str:
        token: str = json.loads(self.data)["since"]
        return token


def seq(user: str, token: str) -> int:
    """The change number a token names (tests share the service's secret)."""
    return SyncTokens(SECRET.encode()).decode(user, token).seq


class EventStream:
    """Reads one event at a time; comments (pings) are kept on the next event, or returned alone."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, wait: float = 10.0, *, pings: bool = False) -> Event | None:
        """The next event (None at the end of the stream); with `pings`, a lone comment counts as one."""
        event = Event()
        seen = False
        async with asyncio.timeout(wait):
            async for line in self._lines:
                if line == "":
                    if seen:
                        return event
                    if pings and event.comments:
                        return event
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    event.comments.append(value)
                elif name == "event":
                    event.event, seen = value, True
                elif name == "data":
                    event.data, seen = (event.data + "\n" + value if event.data else value), True
                elif name == "id":
                    event.id, seen = value, True
        return None

    async def until(self, name: str, wait: float = 10.0) -> Event:
        deadline = time.monotonic() + wait
        while True:
            event = await self.next(max(0.01, deadline - time.monotonic()))
            assert event is not None, f"the stream ended before a {name!r} event"
            if event.event == name:
                return event


@contextlib.asynccontextmanager
async def open_stream(
    client: httpx.AsyncClient, user: str, *, last_event_id: str | None = None, ttl: int = 600, **headers: str
) -> AsyncIterator[EventStream]:
    """An open stream for `user` whose response status the caller checks (the body is not read first)."""
    request_headers = {"Authorization": f"Bearer {make_token(user, ttl=ttl)}", **headers}
    if last_event_id is not None:
        request_headers["Last-Event-ID"] = last_event_id
    async with client.stream("GET", f"/api/{user}/events", headers=request_headers) as response:
        yield EventStream(response)


def json_body(response: httpx.Response) -> Any:
    return json.loads(response.content)


async def write_task(client: httpx.AsyncClient, user: str, title: str = "task") -> dict[str, str]:
    """Create a task for `user` over an async client; fails the test unless the answer is 201."""
    response = await client.post(f"/api/{user}/tasks", json={"title": title}, headers=auth(user))
    assert response.status_code == 201, response.text
    data: dict[str, str] = response.json()["data"]
    return data


def stream_client(base_url: str) -> httpx.AsyncClient:
    """An async client for `base_url` that waits as long as a stream's tests may."""
    return httpx.AsyncClient(base_url=base_url, timeout=30)
