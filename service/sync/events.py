"""`GET /api/{user_id}/events`: server-sent events telling a client its tasks changed.

The stream never carries task data: a client reads `/tasks/changes` from its own token when told.
sse-starlette frames the events and tells the worker when uvicorn begins to shut down; the
response itself is one coroutine per stream, waiting in `receive()` for the client to leave until
the hub wakes it (sse-starlette's own response runs four tasks and a task group per stream, most
of an idle stream's memory).
"""

from __future__ import annotations

import asyncio
import time

import msgspec
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.event import ensure_bytes
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from service.openapi.operation import API_ERRORS, ApiRoute, Operation, parameter
from service.sync.hub import ChangeHub, Stream
from service.sync.schemas import Since
from service.sync.state import SyncState
from service.sync.store import ChangeStore
from service.sync.tokens import Position, SyncTokens
from service.web.envelope import request_id

PING_SECONDS = 15.0  # the contract asks for at least one every 20 s of silence
# A client that stops reading for this long is dropped, freeing its slot.
SEND_TIMEOUT_SECONDS = 30.0
# The spec allows CRLF, CR or LF; plain LF is what hand-written fetch readers split on (`\n\n`).
SEP = "\n"
PING = ensure_bytes(ServerSentEvent(comment="ping", sep=SEP), SEP)
EXPIRED = ensure_bytes(ServerSentEvent(data="{}", event="expired", sep=SEP), SEP)
# What sse-starlette sends, computed once.
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]

_encode = msgspec.json.Encoder().encode


def _last_event_id(request: Request[SyncState], tokens: SyncTokens, user_id: str) -> int | None:
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


def _event(tokens: SyncTokens, user_id: str, name: str, position: Position) -> bytes:
    token = tokens.encode(user_id, position)
    # `ready` has no id: the browser's Last-Event-ID must stay the last `changed` it was sent.
    framed = ServerSentEvent(
        _encode(Since(token)).decode(), event=name, id=token if name == "changed" else None, sep=SEP
    )
    return ensure_bytes(framed, SEP)


async def _send_chunk(send: Send, chunk: bytes) -> None:
    # A client that stops reading is dropped once the socket's buffers are full for this long.
    async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})


async def _send_events(
    receive: Receive,
    send: Send,
    stream: Stream,
    tokens: SyncTokens,
    user_id: str,
    ready: Position,
    last_seen: int | None,
    expires_at: float,
) -> None:
    """Send `ready`, then `changed` whenever the hub offers a newer position, pings in silences."""
    await _send_chunk(send, _event(tokens, user_id, "ready", ready))
    announced = ready.seq
    # Behind the latest change, unreadable, or even ahead of it (a database restored from a
    # backup): the client may have missed something, so it is told at once.
    if last_seen is not None and last_seen != ready.seq:
        await _send_chunk(send, _event(tokens, user_id, "changed", ready))
    quiet_since = time.monotonic()
    while True:
        # Read before every wait: a position offered while the stream was sending is not missed.
        latest = stream.latest
        if latest.seq > announced:
            announced = latest.seq
            await _send_chunk(send, _event(tokens, user_id, "changed", latest))
            quiet_since = time.monotonic()
            continue
        now = time.time()
        if now >= expires_at:
            # The bearer token expired: a stream never outlives the authorisation it began with.
            await _send_chunk(send, EXPIRED)
            return
        # Read at each wait, so that a test may shorten it.
        ping_in = quiet_since + PING_SECONDS - time.monotonic()
        if ping_in <= 0:
            await _send_chunk(send, PING)
            quiet_since = time.monotonic()
            continue
        await stream.wait(receive, min(ping_in, expires_at - now))
        # Client gone, database lost (the client must resync) or the worker shutting down.
        if stream.gone or stream.lost:
            return


class Events:
    """The endpoint, as a plain ASGI app: an idle stream then holds no request/response wrappers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: Request[SyncState] = Request(scope)
        user = scope["user"]
        user_id: str = user.user_id
        tokens: SyncTokens = request.state["sync_tokens"]
        hub: ChangeHub = request.state["hub"]
        feed: ChangeStore = request.state["changes"]
        last_seen = _last_event_id(request, tokens, user_id)
        # sse-starlette notices uvicorn beginning to stop; the hub then ends every stream at once, cleanly.
        hub.end_streams_after(EventSourceResponse._listen_for_exit_signal)
        stream = hub.open(user_id)
        # However it ends (client gone, token expired, database lost, shutdown, error), the slot is freed.
        try:
            # Registered first, then read: a commit after this read is announced, none is lost between.
            await hub.listening()
            seq, read_at = await feed.head(user_id)
            del request
            headers = [*_HEADERS, (b"x-request-id", request_id(scope).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if scope["method"] != "HEAD":
                ready = Position(seq, read_at)
                await _send_events(receive, send, stream, tokens, user_id, ready, last_seen, user.expires_at)
            if not stream.gone:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            stream.close()


_SINCE_TOKEN = "AQAAAAAAAAAqAAYK9w2sE4BHoQ0I2x5Yc0Kf3u1Vb2mZQ"  # noqa: S105 - an example, not a secret
# Before OpenAPI 3.2, the schema of an event stream describes one event.
_SINCE_DATA = {
    "type": "string",
    "contentMediaType": "application/json",
    "description": '`{"since": TOKEN}`',
}
_EVENT_SCHEMA = {
    "oneOf": [
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {"event": {"const": "ready"}, "data": _SINCE_DATA},
        },
        {
            "type": "object",
            "required": ["event", "id", "data"],
            "properties": {"event": {"const": "changed"}, "id": {"type": "string"}, "data": _SINCE_DATA},
        },
        {
            "type": "object",
            "required": ["event"],
            "properties": {"event": {"const": "expired"}, "data": {"const": "{}"}},
        },
    ]
}
_EVENT_STREAM_EXAMPLE = (
    f'event: ready\r\ndata: {{"since":"{_SINCE_TOKEN}"}}\r\n\r\n'
    ": ping\r\n\r\n"
    f'id: {_SINCE_TOKEN}\r\nevent: changed\r\ndata: {{"since":"{_SINCE_TOKEN}"}}\r\n\r\n'
)
STREAM_EVENTS = Operation(
    "streamEvents",
    "Server-sent events: `ready`, then `changed` whenever the user's tasks change; `: ping` every 15 s",
    200,
    None,
    API_ERRORS,
    ok_content={"text/event-stream": {"schema": _EVENT_SCHEMA, "example": _EVENT_STREAM_EXAMPLE}},
    parameters=[
        parameter(
            "Last-Event-ID",
            "header",
            {"type": "string"},
            "The `id` of the last `changed` event received: a `changed` follows `ready` at once if "
            "anything changed since",
        )
    ],
)

routes = [ApiRoute("/api/{user_id}/events", Events(), get=STREAM_EVENTS)]
