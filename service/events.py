"""`GET /api/{user_id}/events`: server-sent events telling a client its tasks changed.

sse-starlette frames the events, sends the keep-alive pings, notices a client that went away and
ends streams at once when uvicorn begins to shut down. The stream never carries task data: a
client reads `/tasks/changes` from its own token when told.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import anyio
import msgspec
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .change_hub import ChangeHub, Stream
from .envelope import request_id
from .state import AppState
from .sync_schemas import Since
from .sync_tokens import Position, SyncTokens
from .task_store import ChangeStore

PING_SECONDS = 15  # the contract asks for at least one every 20 s
# A client that stops reading for this long is dropped, freeing its slot.
SEND_TIMEOUT_SECONDS = 30.0
# At shutdown a stream ends by itself at once; this only bounds a stream that would not.
SHUTDOWN_GRACE_SECONDS = 1.0
# The spec allows CRLF, CR or LF; plain LF is what hand-written fetch readers split on (`\n\n`).
SEP = "\n"

_encode = msgspec.json.Encoder().encode


def _ping() -> ServerSentEvent:
    return ServerSentEvent(comment="ping", sep=SEP)


class EventStreamResponse(EventSourceResponse):
    """An event stream that frees its hub slot however it ends (client gone, shutdown, error)."""

    def __init__(
        self,
        content: AsyncIterator[ServerSentEvent],
        stream: Stream,
        shutdown: anyio.Event,
        headers: dict[str, str],
    ) -> None:
        super().__init__(
            content,
            headers=headers,
            ping=PING_SECONDS,
            ping_message_factory=_ping,
            send_timeout=SEND_TIMEOUT_SECONDS,
            shutdown_event=shutdown,
            shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
            sep=SEP,
        )
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._stream.close()


def _last_event_id(request: Request[AppState], tokens: SyncTokens, user_id: str) -> int | None:
    """The change number a reconnecting client was last told of; None when absent or unreadable.

    An unreadable one (another user's, tampered, signed with an old secret) is not refused: the
    client is simply told at once that something may have changed, and resyncs from its own token.
    """
    header = request.headers.get("last-event-id")
    if header is None:
        return None
    try:
        return tokens.decode(user_id, header.strip()).seq
    except ValueError:
        return -1


async def _end_at(shutdown: anyio.Event, stream: Stream) -> None:
    await shutdown.wait()
    stream.end()


async def _events(
    stream: Stream,
    shutdown: anyio.Event,
    tokens: SyncTokens,
    user_id: str,
    ready: Position,
    last_seen: int | None,
    expires_at: float,
) -> AsyncIterator[ServerSentEvent]:
    def event(name: str, position: Position) -> ServerSentEvent:
        token = tokens.encode(user_id, position)
        # `ready` has no id: the browser's Last-Event-ID must stay the last `changed` it was sent.
        return ServerSentEvent(
            _encode(Since(token)).decode(), event=name, id=token if name == "changed" else None, sep=SEP
        )

    # sse-starlette sets `shutdown` when uvicorn begins to stop: the stream then ends cleanly, with
    # the response's last chunk, rather than being cut off.
    watcher = asyncio.create_task(_end_at(shutdown, stream))
    try:
        yield event("ready", ready)
        announced = ready.seq
        # Behind the latest change, unreadable, or even ahead of it (a database restored from a
        # backup): the client may have missed something, so it is told at once.
        if last_seen is not None and last_seen != ready.seq:
            yield event("changed", ready)
        while True:
            try:
                async with asyncio.timeout(max(0.0, expires_at - time.time())):
                    await stream.wait()
            except TimeoutError:
                # The bearer token expired: a stream never outlives the authorisation it began with.
                yield ServerSentEvent(data="{}", event="expired", sep=SEP)
                return
            if stream.lost:
                return
            latest = stream.latest
            if latest.seq > announced:
                announced = latest.seq
                yield event("changed", latest)
    finally:
        watcher.cancel()


async def events(request: Request[AppState]) -> EventStreamResponse:
    user = request.scope["user"]
    user_id: str = user.user_id
    tokens: SyncTokens = request.state["sync_tokens"]
    hub: ChangeHub = request.state["hub"]
    feed: ChangeStore = request.state["changes"]
    last_seen = _last_event_id(request, tokens, user_id)
    stream = hub.open(user_id)
    try:
        # Registered first, then read: a commit after this read is announced, none is lost between.
        await hub.listening()
        seq, read_at = await feed.head(user_id)
    except BaseException:
        stream.close()
        raise
    expires_at: float = user.expires_at
    headers = {"x-request-id": request_id(request.scope)}
    shutdown = anyio.Event()
    content = _events(stream, shutdown, tokens, user_id, Position(seq, read_at), last_seen, expires_at)
    return EventStreamResponse(content, stream, shutdown, headers)


routes = [Route("/api/{user_id}/events", events, methods=["GET"])]
