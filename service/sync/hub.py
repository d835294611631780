"""One LISTEN connection per worker, fanning PostgreSQL's change notifications out to its event streams.

The triggers of sql/004_changes.sql `NOTIFY task_changes` with the writing user's id when a
transaction commits, whichever worker, process or instance wrote. The hub reads that user's latest
change number once (one short pooled query, however many of their streams are open here) and hands
it to their streams. Streams hold no database connection of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from starlette.types import Receive

from service.db.pool import UNAVAILABLE_ERRORS, asyncpg_dsn
from service.sync.store import ChangeStore
from service.sync.tokens import Position
from service.web.errors import RETRY_STREAMS, ServiceUnavailable, TooManyStreams, unavailable

logger = logging.getLogger("service.events")

CHANNEL = "task_changes"
NO_FREE_CONNECTION = (
    "The database has no free connection for the event stream (see the connection budget); try again shortly"
)
# A silent network can hide a dead connection from both ends: ask the server now and then.
HEALTH_CHECK_SECONDS = 15.0
# Notifications of one user that arrive this close together cost one read and one event: a
# frontend completing twenty selected tasks at once sends each device one `changed`, not twenty
# (and so one `/tasks/changes` read each). 50 ms did the same and was most of an event's latency.
COALESCE_SECONDS = 0.01
MAX_RECONNECT_DELAY = 5.0
# What a lost or unwell database looks like to the listener and to a stream's read.
_DATABASE_TROUBLE: tuple[type[BaseException], ...] = (
    *UNAVAILABLE_ERRORS,
    asyncpg.PostgresError,
    ServiceUnavailable,
)


_NOWHERE = Position(0, datetime.min.replace(tzinfo=UTC))


class Stream:
    """One open event stream, as the hub sees it: the newest position offered, and whether it must end.

    Kept small (slots, no task or future of its own): a worker holds thousands of them.
    """

    __slots__ = ("_hub", "_wait", "gone", "latest", "lost", "user_id")

    def __init__(self, hub: ChangeHub, user_id: str) -> None:
        self._hub = hub
        self._wait: asyncio.Timeout | None = None
        self.user_id = user_id
        self.latest = _NOWHERE
        self.lost = False
        self.gone = False

    def _wake(self) -> None:
        # Not waiting (sending, say): the stream reads `latest` and `lost` before it waits again.
        wait = self._wait
        if wait is not None and not wait.expired():
            # Time the wait out now: its receive() is cancelled, and the timeout makes that a TimeoutError.
            wait.reschedule(asyncio.get_running_loop().time())

    def offer(self, position: Position) -> None:
        if position.seq > self.latest.seq:
            self.latest = position
            self._wake()

    def end(self) -> None:
        """The database connection is gone or the worker is stopping: the client must resync."""
        self.lost = True
        self._wake()

    async def wait(self, receive: Receive, seconds: float) -> None:
        """Wait until woken, until the client goes away (then `gone`), or for `seconds`.

        The client's departure is seen by reading `receive()` here, in the stream's own task:
        no second task per stream to watch for it.
        """
        if self.lost or self.gone:
            return
        try:
            async with asyncio.timeout(max(0.0, seconds)) as self._wait:
                while (await receive())["type"] != "http.disconnect":
                    pass
                self.gone = True
        except TimeoutError:
            pass
        finally:
            self._wait = None

    def close(self) -> None:
        """Free the stream's slot; safe to call more than once."""
        self._hub._remove(self)


class ChangeHub:
    """The worker's listening connection, its streams by user, and the per-user stream limit."""

    def __init__(self, dsn: str, connect_timeout: float, changes: ChangeStore, max_streams: int) -> None:
        self._dsn = asyncpg_dsn(dsn)
        self._connect_timeout = connect_timeout
        self._changes = changes
        self._max_streams = max_streams
        # Why the listener's last connect failed, if it did: a full database is not a down one.
        self._refused: Exception | None = None
        # A list, not a set: a user has a few streams, and a set is 216 bytes before its first.
        self._streams: dict[str, list[Stream]] = {}
        self._pending: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._listening = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._shutdown_watch: asyncio.Task[None] | None = None
        self._stopping = False

    def open(self, user_id: str) -> Stream:
        """A new stream for `user_id`, or 429 when they already have the maximum open at this worker."""
        streams = self._streams.setdefault(user_id, [])
        if len(streams) >= self._max_streams:
            raise TooManyStreams(headers={"retry-after": RETRY_STREAMS})
        stream = Stream(self, user_id)
        streams.append(stream)
        if self._stopping:
            stream.end()
        return stream

    def end_streams_after(self, shutdown: Callable[[], Awaitable[None]]) -> None:
        """End every stream, and any opened later, once `shutdown()` returns; one watcher per worker."""
        if self._shutdown_watch is None:
            self._shutdown_watch = asyncio.get_running_loop().create_task(self._end_at(shutdown))

    async def _end_at(self, shutdown: Callable[[], Awaitable[None]]) -> None:
        await shutdown()
        self._stopping = True
        self._end_all()

    def _remove(self, stream: Stream) -> None:
        streams = self._streams.get(stream.user_id)
        if streams is not None and stream in streams:
            streams.remove(stream)
            if not streams:
                del self._streams[stream.user_id]

    async def listening(self) -> None:
        """Return once notifications are being received; 503 if the database cannot be reached soon."""
        if self._runner is None:
            # Started by the first stream: a worker that never serves one holds no extra connection.
            self._runner = asyncio.create_task(self._run(), name="change-listener")
        if not self._listening.is_set():
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await self._listening.wait()
            except TimeoutError:
                if isinstance(self._refused, asyncpg.TooManyConnectionsError):
                    # The database is up, and full: say so, rather than that it is unavailable.
                    raise unavailable(NO_FREE_CONNECTION) from None
                raise unavailable() from None

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._shutdown_watch is not None:
            self._shutdown_watch.cancel()
        for task in list(self._tasks):
            task.cancel()
        self._end_all()

    async def _run(self) -> None:
        """Listen; after a lost connection, end every stream and connect again, backing off."""
        delay = 0.1
        while True:
            try:
                connection = await asyncpg.connect(self._dsn, timeout=self._connect_timeout)
            except Exception as exc:  # any failure to connect is retried; its kind is logged
                self._refused = exc
                logger.warning("change listener cannot connect: %s", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY)
                continue
            self._refused = None
            try:
                await self._listen(connection)
                logger.warning("change listener lost its connection; ending event streams")
            finally:
                self._listening.clear()
                self._end_all()
                connection.terminate()
            delay = 0.1

    async def _listen(self, connection: asyncpg.Connection) -> None:
        """Return when the connection is lost."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        try:
            await connection.add_listener(CHANNEL, self._notified)
        except _DATABASE_TROUBLE:
            return
        self._listening.set()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEALTH_CHECK_SECONDS):
                    await lost.wait()
            if lost.is_set():
                return
            try:
                await connection.fetchval("SELECT 1", timeout=self._connect_timeout)
            except _DATABASE_TROUBLE:
                return

    def _end_all(self) -> None:
        for streams in self._streams.values():
            for stream in streams:
                stream.end()

    def _notified(self, connection: Any, pid: int, channel: str, user_id: Any) -> None:
        if user_id in self._streams and user_id not in self._pending:
            self._pending.add(user_id)
            task = asyncio.get_running_loop().create_task(self._refresh(user_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _refresh(self, user_id: str) -> None:
        """Read the user's latest change number once and offer it to each of their streams here."""
        await asyncio.sleep(COALESCE_SECONDS)
        # From here on a notification schedules another read: this one may start before its commit.
        self._pending.discard(user_id)
        try:
            seq, read_at = await self._changes.head(user_id)
        except _DATABASE_TROUBLE as exc:
            logger.warning("change read failed (%s); ending the user's event streams", type(exc).__name__)
            for stream in self._streams.get(user_id, ()):
                stream.end()
            return
        for stream in self._streams.get(user_id, ()):
            stream.offer(Position(seq, read_at))
