"""The access log: one JSON line per request, encoded straight to bytes and written once per loop tick.

It bypasses `logging` on purpose: a LogRecord, a formatter and a locked write + flush per request
cost more than the rest of the log line's work (see the README's Performance section).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import select
import time
from collections.abc import Callable

import msgspec

# Writes of at most PIPE_BUF bytes to a pipe are atomic, so workers sharing stdout never interleave
# inside a line; regular files and terminals take them whole too.
MAX_WRITE = select.PIPE_BUF
STDOUT_FILENO = 1


class AccessLine(msgspec.Struct, gc=False):
    """The access log line, in the same shape as every other JSON log record on stdout."""

    ts: float
    level: str
    logger: str
    message: str
    method: str
    route: str
    status: int
    duration_ms: float
    request_id: str
    user: str | None


class AccessLog:
    """Buffers encoded lines and writes them to `fd` on the next event-loop tick (and at exit).

    A line waits at most one tick, so a crash loses at most the lines of the tick it happened in;
    a clean stop flushes what is left.
    """

    def __init__(self, fd: int = STDOUT_FILENO, wall_clock: Callable[[], float] = time.time) -> None:
        self.fd = fd
        self.wall_clock = wall_clock
        self._buffer = bytearray()
        self._scheduled = False
        self._encode_into = msgspec.json.Encoder().encode_into

    def write(
        self, method: str, route: str, status: int, seconds: float, request_id: str, user: str | None
    ) -> None:
        # Microsecond precision by integer division: a float's shortest repr then has at most 3 and 6
        # decimals, at a fifth of round()'s cost.
        ts = int(self.wall_clock() * 1e6) / 1e6
        duration_ms = int(seconds * 1e6) / 1000
        line = AccessLine(
            ts, "info", "service.access", "request", method, route, status, duration_ms, request_id, user
        )
        buffer = self._buffer
        whole = len(buffer)
        self._encode_into(line, buffer, -1)
        buffer += b"\n"
        if len(buffer) > MAX_WRITE and whole:
            # Full: write the lines before this one now, in one write that stays atomic.
            self._write(memoryview(buffer)[:whole])
            del buffer[:whole]
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write every buffered line now."""
        self._scheduled = False
        if self._buffer:
            self._write(memoryview(self._buffer))
            self._buffer.clear()

    def start(self) -> None:
        """Flush at interpreter exit too, for the lines of a process that stops without a lifespan."""
        atexit.register(self.flush)

    def close(self) -> None:
        self.flush()
        atexit.unregister(self.flush)

    def _write(self, data: memoryview) -> None:
        while data:
            try:
                data = data[os.write(self.fd, data) :]
            except BlockingIOError:
                # stdout made non-blocking by someone else: wait for room, as a blocking write would.
                select.select([], [self.fd], [])
            except OSError:
                # Nobody reads stdout any more (EPIPE, closed): a request must not fail for it.
                return
