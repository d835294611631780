"""uvicorn's httptools protocol with the request bounded: its head in size, time and number, its body in time.

Stock httptools buffers a request line and header set of any size for as long as the client
likes, and only then hands them to the app. Here the bytes are counted as they arrive: a URL over
MAX_URL_BYTES is 414 and a header set over MAX_HEADER_BYTES is 431 (in the envelope, then the
connection closes) long before the rest is read; a head not complete within `head_timeout`
seconds of the connection opening or of its first byte closes the connection; and past
uvicorn's `limit_concurrency` connections or requests a request is 503 in the envelope.

A body is bounded too. One that stops arriving for `body_timeout` seconds is 408 and closes. A
response finished before its request's body was read (a 401 answers before any body is read)
closes the connection: uvicorn would drop the rest of that body as it came, and every byte of it
cancelled the keep-alive timer without arming another, so a client could hold the socket forever.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any, cast

import httptools
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from service.settings import Settings
from service.web.common_headers import CommonHeadersMiddleware, with_common_headers
from service.web.envelope import error_response
from service.web.errors import (
    RETRY_BUSY,
    ApiError,
    HeadersTooLarge,
    RequestTimeout,
    ServiceUnavailable,
    UriTooLong,
)
from service.web.limits import HEADER_OVERHEAD, MAX_HEADER_BYTES, MAX_URL_BYTES

# Bytes a head within both limits can take on the wire beyond what they count: the method, the
# HTTP version, spaces and line ends, and whitespace around header values.
_HEAD_SLACK = 1024
MAX_HEAD_BYTES = MAX_URL_BYTES + MAX_HEADER_BYTES + _HEAD_SLACK
# After a refusal, how long and how much of the rest of the head is read and dropped before the
# socket closes: closing with unread bytes would make the kernel reset the connection, and the
# client would lose the answer.
LINGER_SECONDS = 1.0
LINGER_BYTES = 256 * 1024


class _Closing(ApiError):
    """Marks a connection that is closing after its answer: what still arrives is dropped."""


_CLOSING = _Closing()


class _Refused(Exception):
    """Stops the parser from inside its callback; the refusal is answered once it returns."""


def _over_capacity_response() -> ApiError:
    return ServiceUnavailable(
        "The server is at its connection limit; try again shortly",
        headers={"retry-after": RETRY_BUSY, "connection": "close"},
    )


async def _over_capacity(scope: Scope, receive: Receive, send: Send) -> None:
    await error_response(scope, _over_capacity_response())(scope, receive, send)


_OVER_CAPACITY = CommonHeadersMiddleware(_over_capacity)


class _Head:
    """What a connection's protocol counts of the request head it is reading.

    Apart, in slots: uvicorn's protocol sets 27 attributes, and past CPython's 30 shared instance
    attributes each connection (each idle event stream, by the thousand) pays for a 1.5 KiB dict.
    """

    __slots__ = (
        "began",
        "body_timeout",
        "body_timer",
        "header_bytes",
        "lingering",
        "max_concurrency",
        "open",
        "refusal",
        "timeout",
        "timer",
        "unparsed_bytes",
        "url_bytes",
    )

    def __init__(self, timeout: float, body_timeout: float, max_concurrency: int | None) -> None:
        self.timeout = timeout
        self.body_timeout = body_timeout
        self.body_timer: asyncio.TimerHandle | None = None
        self.max_concurrency = max_concurrency
        self.timer: asyncio.TimerHandle | None = None
        self.open = False
        self.began = False
        self.url_bytes = 0
        self.header_bytes = 0
        self.unparsed_bytes = 0
        self.refusal: ApiError | None = None
        self.lingering = 0


class HeadLimitedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that refuses oversized or slow request heads and answers overload in the envelope."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        head_timeout: float = 5.0,
        body_timeout: float = 10.0,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # uvicorn's own check would answer in plain text: keep the number, answer in the envelope.
        self._head = _Head(head_timeout, body_timeout, self.limit_concurrency)
        self.limit_concurrency = None

    @classmethod
    def with_timeouts(cls, head_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
        """What uvicorn's `http=` takes: it calls it as it would the class (a partial pickles for workers)."""
        return cast(
            type[asyncio.Protocol], partial(cls, head_timeout=head_timeout, body_timeout=body_timeout)
        )

    # --- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends a head is closed too.
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        head = self._head
        if head.refusal is not None:
            self._linger(len(data))
            return
        self._unset_keepalive_if_required()
        head.began = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if head.refusal is None:
                raise
            self._refuse(head.refusal)
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if head.open:
            # httptools holds a header's bytes until the header ends, where on_header cannot count
            # them: so a chunk that arrived wholly inside a head counts in full. (The chunk the head
            # began in is left out, so a pipelined head is never overcounted.)
            if not head.began:
                head.unparsed_bytes += len(data)
                if head.unparsed_bytes > MAX_HEAD_BYTES:
                    self._refuse(HeadersTooLarge())
                    return
            if head.timer is None:
                self._arm_head_timer()
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete and not head.open:
            # A body is on its way: each chunk restarts its clock.
            self._arm_body_timer()
        elif head.body_timer is not None:
            self._cancel_body_timer()

    # --- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        head = self._head
        head.open = head.began = True
        head.url_bytes = head.header_bytes = head.unparsed_bytes = 0

    # on_url and on_header run for every request: they repeat uvicorn's two lines rather than
    # pay for a super() call each.
    def on_url(self, url: bytes) -> None:
        head = self._head
        head.url_bytes += len(url)
        if head.url_bytes > MAX_URL_BYTES:
            head.refusal = UriTooLong()
            raise _Refused
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        head = self._head
        head.header_bytes += len(name) + len(value) + HEADER_OVERHEAD
        if head.header_bytes > MAX_HEADER_BYTES:
            head.refusal = HeadersTooLarge()
            raise _Refused
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        head = self._head
        head.open = False
        if head.timer is not None:
            self._cancel_head_timer()
        limit = head.max_concurrency
        if limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit):
            self.logger.warning("Exceeded concurrency limit.")
            app, self.app = self.app, _OVER_CAPACITY
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            # Answered before its body was all read: what is left of the body cannot be told from
            # a next request, so the connection ends here (RFC 9112 §9.6 allows it).
            self.server_state.total_requests += 1
            self._cancel_body_timer()
            self._close_gently()
            return
        super().on_response_complete()

    # --- refusals and the deadlines ----------------------------------------------------------

    def _refuse(self, error: ApiError) -> None:
        """Answer `error` in the envelope and close, reading the rest of the head only to drop it."""
        self._head.refusal = error
        self._cancel_head_timer()
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a response still being written: an answer would interleave.
            self.transport.close()
            return
        self._answer(error)

    def _answer(self, error: ApiError) -> None:
        """Write `error` in the envelope straight to the socket, then close."""
        response = error_response(cast(Scope, self.scope), error)
        headers = [
            *self.server_state.default_headers,
            *with_common_headers(response.raw_headers),
            (b"connection", b"close"),
        ]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        self.transport.write(STATUS_LINE[error.status] + head + b"\r\n" + response.body)
        self._close_gently()

    def _close_gently(self) -> None:
        """Close once the answer is out, reading what still arrives only to drop it, for a moment.

        Closing with unread bytes would make the kernel reset the connection, and the client would
        lose the answer; the linger is bounded in time and bytes, so it holds nothing for long.
        """
        if self._head.refusal is None:
            self._head.refusal = _CLOSING
        # Closing already: it no longer counts against the connection limit while it lingers.
        self.connections.discard(self)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._head.timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def _linger(self, size: int) -> None:
        self._head.lingering += size
        if self._head.lingering > LINGER_BYTES:
            self.transport.close()

    def _arm_head_timer(self) -> None:
        self._head.timer = self.loop.call_later(self._head.timeout, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        head = self._head
        if head.timer is not None:
            head.timer.cancel()
            head.timer = None

    def _arm_body_timer(self) -> None:
        head = self._head
        if head.body_timer is not None:
            head.body_timer.cancel()
        head.body_timer = self.loop.call_later(head.body_timeout, self._body_timed_out)

    def _cancel_body_timer(self) -> None:
        head = self._head
        if head.body_timer is not None:
            head.body_timer.cancel()
            head.body_timer = None

    def _body_timed_out(self) -> None:
        self._head.body_timer = None
        cycle = self.cycle
        if cycle is None or not cycle.more_body or self.transport.is_closing():
            return
        if cycle.response_started:
            self.transport.close()
            return
        # The app is waiting for the body: it learns the client is gone, and its answer is dropped.
        cycle.disconnected = True
        cycle.message_event.set()
        self._head.refusal = RequestTimeout()
        self._answer(self._head.refusal)

    def _head_timed_out(self) -> None:
        self._head.timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head waits behind a request still being answered: its clock starts after.
            if self._head.open:
                self._arm_head_timer()
            return
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn options that guard the service: `python -m service` and the tests' server both use them."""
    return {
        "http": HeadLimitedProtocol.with_timeouts(settings.head_timeout, settings.body_timeout),
        "limit_concurrency": settings.max_connections,
        "proxy_headers": True,
        # No `server: uvicorn` banner, and no WebSocket upgrades: the API serves neither.
        "server_header": False,
        "ws": "none",
        "forwarded_allow_ips": settings.forwarded_allow_ips,
    }
