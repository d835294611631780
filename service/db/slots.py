"""Who may hold a pool connection next: arrival order, a bounded wait, and at most a share per user."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Hashable


def _give_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class PoolSlots:
    """At most `size` holders of pool connections, at most `share` of them one holder's (a user),
    served in arrival order, none waiting past `timeout`.

    asyncpg hands a freed connection to whichever task asks first, so under load a waiting request
    can be overtaken again and again (a long p99 tail): requests queue here first. The share keeps
    a few busy users from holding every connection: a waiter whose user is at its share lets the
    next in line go first. asyncio's Semaphore queues in order too, but bounding its wait takes an
    `asyncio.timeout` per request; here a waiter is one future and one timer.
    """

    def __init__(self, size: int, timeout: float, share: int | None = None) -> None:
        self._free = size
        self._timeout = timeout
        self._share = size if share is None else max(1, min(share, size))
        self._held: dict[Hashable, int] = {}
        # Waiters that timed out or were cancelled stay until a hand-over passes over them.
        self._waiters: collections.deque[tuple[asyncio.Future[None], Hashable]] = collections.deque()

    async def acquire(self, holder: Hashable = None) -> None:
        """Take a slot for `holder`; TimeoutError after `timeout` seconds in line."""
        held = self._held.get(holder, 0)
        if self._free and held < self._share:
            # A slot free while others wait means each of them is at its share (a hand-over gives
            # a slot to the first who is not), so taking it overtakes nobody who could have had it.
            self._free -= 1
            self._held[holder] = held + 1
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append((waiter, holder))
        timer = loop.call_later(self._timeout, _give_up, waiter)
        try:
            await waiter
        except BaseException:
            # Timed out or cancelled: a slot handed over in the meantime goes to the next in line.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(holder)
            raise
        finally:
            timer.cancel()

    def release(self, holder: Hashable = None) -> None:
        """Give `holder`'s slot back: to the first waiter in line whose holder is under its share."""
        held = self._held[holder] - 1
        if held:
            self._held[holder] = held
        else:
            del self._held[holder]
        self._free += 1
        waiters = self._waiters
        index = 0
        while self._free and index < len(waiters):
            waiter, other = waiters[index]
            if waiter.done():
                del waiters[index]
                continue
            taken = self._held.get(other, 0)
            if taken < self._share:
                del waiters[index]
                self._free -= 1
                self._held[other] = taken + 1
                waiter.set_result(None)
                continue
            index += 1
